using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;

namespace Factum.Design;

/// <summary>The code-first catalog: message types registered in an <see cref="EventTypeRegistry"/>, with JSON Schemas generated from the CLR types.</summary>
public static class CodeCatalog
{
    /// <summary>The registry's types as catalog messages (one version each: the registered one).</summary>
    public static EventCatalogModel FromRegistry(EventTypeRegistry registry, string source = "code")
    {
        ArgumentNullException.ThrowIfNull(registry);
        var options = (registry.Serializer as SystemTextJsonEventSerializer)?.Options ?? SystemTextJsonEventSerializer.Default.Options;
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

    /// <summary>Loads an assembly and registers every type marked with <see cref="EventTypeAttribute"/>.</summary>
    /// <exception cref="CatalogFormatException">The file is not a loadable .NET assembly.</exception>
    public static EventCatalogModel FromAssembly(string path)
    {
        Assembly assembly;
        try
        {
            assembly = Assembly.LoadFrom(Path.GetFullPath(path));
        }
        catch (Exception ex) when (ex is BadImageFormatException or FileNotFoundException or FileLoadException)
        {
            throw new CatalogFormatException(path, 0, $"not a loadable .NET assembly: {ex.Message}");
        }
        var registry = new EventTypeRegistry();
        try
        {
            registry.RegisterAssembly(assembly);
        }
        catch (ArgumentException ex)
        {
            throw new CatalogFormatException(path, 0, ex.Message);
        }
        return FromRegistry(registry, Path.GetFileName(path));
    }

    private static JsonObject? Schema(JsonSerializerOptions options, Type type)
    {
        var node = options.GetJsonSchemaAsNode(type, new JsonSchemaExporterOptions { TreatNullObliviousAsNonNullable = true });
        return node as JsonObject;
    }
}
