using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using Factum.Design;

namespace Factum.Design.Tests;

/// <summary>
/// <c>catalog --assembly</c> loads the assembly into a collectible context and runs code as reflection touches it: the
/// documentation says so, and the context is unloaded afterwards.
/// </summary>
public sealed class AssemblyLoadingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("factum-asm-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>An assembly whose module initialiser and event type's static constructor each write a file when they run.</summary>
    private string ProbeAssembly(string marker)
    {
        var builder = new PersistedAssemblyBuilder(new AssemblyName("Factum.Probe"), typeof(object).Assembly);
        var module = builder.DefineDynamicModule("Factum.Probe");
        var write = typeof(File).GetMethod(nameof(File.WriteAllText), [typeof(string), typeof(string)])!;
        void Body(ILGenerator il, string text)
        {
            il.Emit(OpCodes.Ldstr, marker + text);
            il.Emit(OpCodes.Ldstr, "ran");
            il.Emit(OpCodes.Call, write);
            il.Emit(OpCodes.Ret);
        }
        Body(module.DefineGlobalMethod(".cctor", MethodAttributes.Private | MethodAttributes.Static | MethodAttributes.SpecialName | MethodAttributes.RTSpecialName, typeof(void), Type.EmptyTypes).GetILGenerator(), ".module");
        module.CreateGlobalFunctions();
        var type = module.DefineType("Probe.SomethingHappened", TypeAttributes.Public | TypeAttributes.Class | TypeAttributes.Sealed);
        type.SetCustomAttribute(new CustomAttributeBuilder(typeof(EventTypeAttribute).GetConstructor([typeof(string)])!, ["SomethingHappened"]));
        type.DefineDefaultConstructor(MethodAttributes.Public);
        Body(type.DefineTypeInitializer().GetILGenerator(), ".type");
        var id = type.DefineProperty("Id", PropertyAttributes.None, typeof(string), null);
        var getter = type.DefineMethod("get_Id", MethodAttributes.Public | MethodAttributes.SpecialName | MethodAttributes.HideBySig, typeof(string), Type.EmptyTypes);
        var il = getter.GetILGenerator();
        il.Emit(OpCodes.Ldstr, "x");
        il.Emit(OpCodes.Ret);
        id.SetGetMethod(getter);
        type.CreateType();
        var path = Path.Combine(_dir, "Factum.Probe.dll");
        builder.Save(path);
        return path;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static EventCatalogModel Read(string path) => CodeCatalog.FromAssembly(path);

    [Fact]
    public void The_assembly_is_read_in_a_collectible_context_that_is_unloaded_afterwards()
    {
        var marker = Path.Combine(_dir, "ran");
        var catalog = Read(ProbeAssembly(marker));
        var message = Assert.Single(catalog.Messages);
        Assert.Equal("SomethingHappened", message.Name);
        Assert.NotNull(message.Latest!.Schema!["properties"]!["id"]); // the schema generated from the loaded type

        for (var i = 0; i < 20 && AssemblyLoadContext.All.Any(c => c.Name?.StartsWith(CodeCatalog.LoadContextPrefix, StringComparison.Ordinal) == true); i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.DoesNotContain(AssemblyLoadContext.All, c => c.Name?.StartsWith(CodeCatalog.LoadContextPrefix, StringComparison.Ordinal) == true);
        Assert.DoesNotContain(AppDomain.CurrentDomain.GetAssemblies(), a => a.GetName().Name == "Factum.Probe" && !a.IsCollectible);
        // Reading it ran its module initialiser: --assembly runs code, as its description and docs/catalog.md say.
        Assert.True(File.Exists(marker + ".module"));
    }

    [Fact]
    public void The_documentation_says_the_assembly_code_runs()
    {
        var docs = File.ReadAllText(Path.Combine(Repo.Root, "docs", "catalog.md"));
        Assert.Contains("**loads and runs the assembly's code (module initialisers, static constructors): only use assemblies you trust**", docs);
        // The option's help says the same: CatalogCliTests.The_assembly_option_says_it_runs_the_assembly_code.
    }
}
