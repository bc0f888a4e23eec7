using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Factum.Design;

/// <summary>
/// Writes generated files under an output folder and remembers their paths. Every file name that comes from the catalog
/// or a store goes through <see cref="FileName"/>; every write stays inside the folder and never follows a symbolic link
/// out of it.
/// </summary>
internal sealed class OutputFolder
{
    /// <summary>The longest catalog name kept as it is; longer ones are shortened and get a hash.</summary>
    public const int MaxPlainName = 64;

    private const int SlugLength = 40;
    private static readonly string[] DeviceNames = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", .. Enumerable.Range(0, 10).SelectMany(i => new[] { $"COM{i}", $"LPT{i}" })];

    private readonly string _root;
    private readonly string _realRoot;
    private readonly List<string> _files = [];

    public OutputFolder(string root)
    {
        Directory.CreateDirectory(root);
        _root = Path.GetFullPath(root);
        _realRoot = SafePaths.RealPath(_root);
    }

    public IReadOnlyList<string> Files => _files;

    /// <summary>
    /// The file (or folder) name for a catalog name: the name itself when it is plain (letters, digits, '.', '_', '-',
    /// not starting with '.' or '-', not ending with '.', at most <see cref="MaxPlainName"/> characters, not a Windows
    /// device name); otherwise a readable slug of it, '~' and 16 hex digits of its SHA-256. Plain names hold no '~', so a
    /// plain name never equals a hashed one; distinct names get distinct file names; the same name always the same.
    /// </summary>
    public static string FileName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (IsPlain(name)) return name;
        var slug = new string(name.Take(SlugLength).Select(c => IsPlainChar(c) ? c : '_').ToArray()).TrimStart('.', '-');
        return (slug.Length == 0 ? "_" : slug) + "~" + Hash(name);
    }

    /// <summary>16 hex digits of the SHA-256 of the name's UTF-16 code units (lone surrogates included, so distinct strings differ).</summary>
    public static string Hash(string name) => Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(name.AsSpan())))[..16];

    private static bool IsPlainChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-';

    private static bool IsPlain(string name) =>
        name.Length is > 0 and <= MaxPlainName && name.All(IsPlainChar) && name[0] is not ('.' or '-') && name[^1] != '.'
        && !DeviceNames.Contains(name.Split('.')[0], StringComparer.OrdinalIgnoreCase);

    /// <summary>Writes <paramref name="content"/> to <paramref name="relative"/> (folders created, LF line ends).</summary>
    public void Save(string relative, string content)
    {
        var path = Prepare(relative);
        using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(content.ReplaceLineEndings("\n"));
        }
        _files.Add(path);
    }

    /// <summary>Copies a file in.</summary>
    public void Copy(string source, string relative)
    {
        var path = Prepare(relative);
        using (var from = File.OpenRead(source))
        using (var to = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            from.CopyTo(to);
        }
        _files.Add(path);
    }

    /// <summary>
    /// Checks <paramref name="relative"/> ('/'-separated segments made of the characters <see cref="FileName"/> emits),
    /// creates its folders, refuses any existing folder or file that is a link leading outside the root, and removes an
    /// existing file (or in-root link), so the caller creates a new file and never writes through a link.
    /// </summary>
    private string Prepare(string relative)
    {
        var segments = relative.Split('/');
        foreach (var s in segments)
        {
            if (s.Length == 0 || s is "." or ".." || !s.All(c => IsPlainChar(c) || c == '~'))
                throw new ArgumentException($"'{relative}' is not a generated relative path; names must go through OutputFolder.FileName", nameof(relative));
        }
        var current = _root;
        for (var i = 0; i < segments.Length; i++)
        {
            current = Path.Combine(current, segments[i]);
            var info = new FileInfo(current);
            if (info.LinkTarget is not null && !IsInside(SafePaths.RealPath(current)))
                throw new CatalogFormatException(current, 0, "is a symbolic link that leads outside the output folder; refusing to write through it (remove the link)");
            if (i < segments.Length - 1)
            {
                if (File.Exists(current)) throw new CatalogFormatException(current, 0, "is a file where the generator needs a folder");
                Directory.CreateDirectory(current);
            }
            else if (info.Exists || info.LinkTarget is not null)
            {
                if (Directory.Exists(current) && info.LinkTarget is null) throw new CatalogFormatException(current, 0, "is a folder where the generator writes a file");
                File.Delete(current); // a file, or a link inside the folder: removed, never written through
            }
        }
        if (!IsInside(SafePaths.RealPath(Path.GetDirectoryName(current)!))) throw new CatalogFormatException(current, 0, "lies outside the output folder");
        return current;
    }

    private bool IsInside(string real) => SafePaths.IsInside(real, _realRoot);
}

/// <summary>Paths with their symbolic links resolved, to tell whether a file really lies inside a folder.</summary>
internal static class SafePaths
{
    /// <summary>Whether <paramref name="real"/> is <paramref name="realRoot"/> or below it (both resolved by <see cref="RealPath(string)"/>).</summary>
    public static bool IsInside(string real, string realRoot) =>
        real == realRoot || real.StartsWith(realRoot.EndsWith(Path.DirectorySeparatorChar) ? realRoot : realRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The path with every symbolic link along it resolved (components that do not exist are kept as they are).</summary>
    public static string RealPath(string path) => RealPath(Path.GetFullPath(path), 0);

    private static string RealPath(string full, int hops)
    {
        if (hops > 40) throw new IOException($"too many levels of symbolic links at {full}");
        var root = Path.GetPathRoot(full)!;
        var current = root;
        var parts = full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(current, parts[i]);
            var target = new FileInfo(next).LinkTarget;
            if (target is null)
            {
                current = next;
                continue;
            }
            var resolved = RealPath(Path.GetFullPath(target, current), hops + 1);
            current = i == parts.Length - 1 ? resolved : RealPath(Path.Combine([resolved, .. parts[(i + 1)..]]), hops + 1);
            return current;
        }
        return current;
    }
}
