using System.Reflection;
using System.Runtime.Loader;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;

namespace Factum.Design;

/// <summary>The code-first catalog: message types registered in an <see cref="EventTypeRegistry"/>, with JSON Schemas generated from the CLR types.</summary>
public static class CodeCatalog
{
    /// <summary>The registry's types as catalog messages (one version each: the registered one).</summary>
    public static EventCatalogModel FromRegistry(EventTypeRegistry registry, string source = "code") => FromRegistry(registry, source, null);

    private static EventCatalogModel FromRegistry(EventTypeRegistry registry, string source, JsonSerializerOptions? schemaOptions)
    {
        ArgumentNullException.ThrowIfNull(registry);
        var options = schemaOptions ?? (registry.Serializer as SystemTextJsonEventSerializer)?.Options ?? SystemTextJsonEventSerializer.Default.Options;
        var messages = registry.Types.Select(t => new CatalogMessage
        {
            Name = t.Name,
            Kind = t.Kind switch { MessageKind.Command => CatalogMessageKind.Command, MessageKind.Query => CatalogMessageKind.Query, _ => CatalogMessageKind.Event },
            Classification = t.Classification.ToString().ToLowerInvariant(),
            Owners = t.Owner is null ? [] : [t.Owner],
            Description = t.Description,
            Versions = [new MessageVersion(t.Version, Schema(options, t.ClrType), null)],
            Source = new SourceLocation($"{source}:{t.ClrType.FullName}", 0),
        }).ToList();
        return new EventCatalogModel { Messages = messages };
    }

    /// <summary>
    /// Loads an assembly into its own collectible <see cref="AssemblyLoadContext"/>, registers every type marked with
    /// <see cref="EventTypeAttribute"/>, reads its handlers and <c>[assembly: FactumService]</c>, and unloads the context.
    /// This loads and runs the assembly's code (module initialisers, static constructors, attribute constructors) as
    /// reflection and JSON Schema generation touch its types: only use assemblies you trust.
    /// </summary>
    /// <exception cref="CatalogFormatException">The file is not a loadable .NET assembly.</exception>
    public static EventCatalogModel FromAssembly(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var context = new CatalogLoadContext(Path.GetFullPath(path));
        try
        {
            return ReadAssembly(context, path);
        }
        finally
        {
            context.Unload();
        }
    }

    /// <summary>The name every context <see cref="FromAssembly"/> creates starts with (to find one that was not unloaded).</summary>
    public const string LoadContextPrefix = "factum-catalog:";

    /// <summary>Reads the assembly; nothing from the context escapes this method (so the context can be collected).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static EventCatalogModel ReadAssembly(CatalogLoadContext context, string path)
    {
        Assembly assembly;
        try
        {
            assembly = context.LoadFromAssemblyPath(context.MainPath);
        }
        catch (Exception ex) when (ex is BadImageFormatException or FileNotFoundException or FileLoadException)
        {
            throw new CatalogFormatException(path, 0, $"not a loadable .NET assembly: {ex.Message}");
        }
        var registry = new EventTypeRegistry();
        try
        {
            Type[] types;
            try
            {
                types = assembly.GetTypes();
            }
            catch (ReflectionTypeLoadException ex)
            {
                // Types that need assemblies the CLI does not have (an ASP.NET Core app's controllers): skip them.
                types = ex.Types.OfType<Type>().ToArray();
            }
            foreach (var t in types.Where(t => t.GetCustomAttribute<EventTypeAttribute>() is not null)) registry.Register(t);
        }
        catch (ArgumentException ex)
        {
            throw new CatalogFormatException(path, 0, ex.Message);
        }
        // A private copy of the serializer options: their cache of type metadata goes with the context.
        var options = new JsonSerializerOptions(SystemTextJsonEventSerializer.Default.Options);
        var catalog = FromRegistry(registry, Path.GetFileName(path), options);
        return catalog with { Services = ServicesOf(assembly, registry) };
    }

    /// <summary>
    /// A collectible context for one assembly: what the CLI itself has (Factum, the framework) is shared, so attribute
    /// and interface types match; anything else is loaded from the assembly's folder.
    /// </summary>
    private sealed class CatalogLoadContext(string mainPath) : AssemblyLoadContext(LoadContextPrefix + Path.GetFileName(mainPath), isCollectible: true)
    {
        public string MainPath { get; } = mainPath;

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            try
            {
                Default.LoadFromAssemblyName(assemblyName);
                return null; // shared with the CLI
            }
            catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or BadImageFormatException)
            {
                var local = Path.Combine(Path.GetDirectoryName(MainPath)!, assemblyName.Name + ".dll");
                return File.Exists(local) ? LoadFromAssemblyPath(local) : null;
            }
        }
    }

    /// <summary>
    /// The service the assembly implements: its <see cref="Factum.Messaging.FactumServiceAttribute"/> (or the assembly's
    /// name), consuming every message its <c>IMessageHandler&lt;T&gt;</c> and <c>IRequestHandler&lt;T, R&gt;</c> classes handle.
    /// </summary>
    public static IReadOnlyList<CatalogService> ServicesOf(Assembly assembly, EventTypeRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        ArgumentNullException.ThrowIfNull(registry);
        Type[] types;
        try
        {
            types = assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException ex)
        {
            types = ex.Types.Where(t => t is not null).ToArray()!;
        }
        string? Name(Type t) => registry.GetInfo(t)?.Name;
        var handled = types.Where(t => t is { IsClass: true, IsAbstract: false })
            .SelectMany(t => t.GetInterfaces())
            .Where(i => i.IsGenericType && (i.GetGenericTypeDefinition() == typeof(Factum.Messaging.IMessageHandler<>) || i.GetGenericTypeDefinition() == typeof(Factum.Messaging.IRequestHandler<,>)))
            .Select(i => Name(i.GenericTypeArguments[0])).OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var attr = assembly.GetCustomAttribute<Factum.Messaging.FactumServiceAttribute>();
        if (attr is null && handled.Count == 0) return [];
        return
        [
            new CatalogService
            {
                Id = attr?.Name ?? assembly.GetName().Name ?? "service",
                Domain = attr?.Domain,
                Owner = attr?.Owner,
                Consumes = handled,
                Publishes = (attr?.Publishes ?? []).Select(Name).OfType<string>().ToList(),
                Sends = (attr?.Sends ?? []).Select(Name).OfType<string>().ToList(),
                Description = $"from the handlers of {assembly.GetName().Name}",
                Source = new SourceLocation($"code:{assembly.GetName().Name}", 0),
            },
        ];
    }

    private static JsonObject? Schema(JsonSerializerOptions options, Type type)
    {
        var node = options.GetJsonSchemaAsNode(type, new JsonSchemaExporterOptions { TreatNullObliviousAsNonNullable = true });
        return node as JsonObject;
    }
}
