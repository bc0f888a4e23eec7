using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Factum;

/// <summary>The event stores a <see cref="StoreConnectionString"/> can name.</summary>
public enum StoreKind
{
    /// <summary><c>memory:</c> — the in-memory store of the core package: one process, gone when it ends.</summary>
    Memory,

    /// <summary><c>sqlite:&lt;path&gt;</c> — the embedded store in one SQLite file (package Factum.Sqlite).</summary>
    Sqlite,

    /// <summary><c>postgres://…</c> — a PostgreSQL database that several application nodes share (package Factum.PostgreSql).</summary>
    PostgreSql,
}

/// <summary>
/// A validated store connection string: <c>sqlite:&lt;path&gt;</c>, <c>memory:</c> or
/// <c>postgres://user:password@host:port/db</c> (also <c>postgresql://</c>). It only names a backend; opening it is the
/// backend's job (<c>FactumBuilder.UseStore</c>, or the CLI's <c>--store</c>).
/// </summary>
/// <remarks>
/// <see cref="ToString"/> and every error message mask the password, so a connection string can be logged and echoed.
/// For <c>sqlite:</c> the path names either a data directory holding <c>factum.db</c> (the meaning of the CLI's
/// <c>--data</c>) or the database file itself: an existing directory is a data directory; an existing file, or a path
/// ending in <c>.db</c>, is the file; any other path is a data directory to create.
/// </remarks>
public sealed record StoreConnectionString
{
    /// <summary>The file a data directory holds the store in.</summary>
    public const string DatabaseFileName = "factum.db";

    /// <summary>The forms <see cref="Parse"/> accepts, as error messages list them.</summary>
    public const string AcceptedForms = "sqlite:<path> (a data directory holding factum.db, or a .db file), memory:, or postgres://user:password@host:port/db";

    private StoreConnectionString(StoreKind kind) => Kind = kind;

    /// <summary>Which backend it names.</summary>
    public StoreKind Kind { get; }

    /// <summary><c>sqlite:</c> — the path as written (a data directory or a database file); null otherwise.</summary>
    public string? Path { get; private init; }

    /// <summary><c>sqlite:</c> — the SQLite database file the path resolves to; null otherwise.</summary>
    public string? DatabaseFile { get; private init; }

    /// <summary><c>postgres://</c> — the host; null otherwise.</summary>
    public string? Host { get; private init; }

    /// <summary><c>postgres://</c> — the port (5432 when not written); null otherwise.</summary>
    public int? Port { get; private init; }

    /// <summary><c>postgres://</c> — the database name; null otherwise.</summary>
    public string? Database { get; private init; }

    /// <summary><c>postgres://</c> — the user name, if written.</summary>
    public string? UserName { get; private init; }

    /// <summary><c>postgres://</c> — the password, if written. <see cref="ToString"/> never prints it.</summary>
    public string? Password { get; private init; }

    /// <summary><c>postgres://</c> — what follows <c>?</c> (e.g. <c>sslmode=require</c>), if written.</summary>
    public string? Parameters { get; private init; }

    /// <summary>The in-memory store (<c>memory:</c>).</summary>
    public static StoreConnectionString Memory { get; } = new(StoreKind.Memory);

    /// <summary>The SQLite store in <paramref name="directory"/>/factum.db: what the CLI's <c>--data DIR</c> names.</summary>
    /// <exception cref="ArgumentException"><paramref name="directory"/> is empty.</exception>
    public static StoreConnectionString ForDataDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        return new StoreConnectionString(StoreKind.Sqlite) { Path = directory, DatabaseFile = System.IO.Path.Combine(directory, DatabaseFileName) };
    }

    /// <summary>Parses and validates a store connection string.</summary>
    /// <exception cref="FormatException">It is none of the accepted forms; the message names it (password masked) and lists them.</exception>
    public static StoreConnectionString Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        FormatException Fail(string reason) => ConnectionStrings.Invalid("store", value, reason, AcceptedForms);
        var (scheme, rest) = ConnectionStrings.SplitScheme(value, Fail);
        switch (scheme)
        {
            case "memory":
                return rest.Length == 0 ? Memory : throw Fail("memory: takes nothing after the colon");
            case "sqlite":
                if (string.IsNullOrWhiteSpace(rest)) throw Fail("sqlite: needs a path after the colon: the data directory holding factum.db, or a .db file");
                if (rest.Any(char.IsControl)) throw Fail("the path has control characters");
                return new StoreConnectionString(StoreKind.Sqlite) { Path = rest, DatabaseFile = ResolveDatabaseFile(rest) };
            case "postgres" or "postgresql":
                var a = ConnectionStrings.ParseAuthority(rest, 5432, multipleHosts: false, Fail);
                if (a.Path.Length == 0 || a.Path.Contains('/', StringComparison.Ordinal)) throw Fail("name the database after the host (postgres://user:password@host:port/db)");
                return new StoreConnectionString(StoreKind.PostgreSql)
                {
                    Host = a.Hosts[0].Host,
                    Port = a.Hosts[0].Port,
                    Database = Uri.UnescapeDataString(a.Path),
                    UserName = a.UserName,
                    Password = a.Password,
                    Parameters = a.Query,
                };
            default:
                throw Fail($"the scheme '{scheme}:' is not one Factum knows");
        }
    }

    /// <summary>Parses <paramref name="value"/>; false (and <paramref name="error"/> says why) when it is not valid.</summary>
    public static bool TryParse(string? value, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out StoreConnectionString? result, out string? error)
    {
        try
        {
            result = Parse(value ?? "");
            error = null;
            return true;
        }
        catch (FormatException ex)
        {
            result = null;
            error = ex.Message;
            return false;
        }
    }

    /// <summary>The connection string in its canonical form, with the password masked as <c>***</c>.</summary>
    public override string ToString() => Kind switch
    {
        StoreKind.Memory => "memory:",
        StoreKind.Sqlite => "sqlite:" + Path,
        _ => "postgres://" + ConnectionStrings.UserInfo(UserName, Password) + ConnectionStrings.HostPort(Host!, Port!.Value) + "/" + Database
             + (Parameters is null ? "" : "?" + ConnectionStrings.Mask(Parameters)),
    };

    // An existing directory is a data directory; an existing file or a *.db path is the file; anything else is a data
    // directory to create (the CLI's --data meaning, so `sqlite:factum-data` and `--data factum-data` agree).
    private static string ResolveDatabaseFile(string path)
    {
        if (Directory.Exists(path)) return System.IO.Path.Combine(path, DatabaseFileName);
        if (File.Exists(path) || path.EndsWith(".db", StringComparison.OrdinalIgnoreCase)) return path;
        return System.IO.Path.Combine(path, DatabaseFileName);
    }
}

/// <summary>The message transports a <see cref="TransportConnectionString"/> can name.</summary>
public enum TransportKind
{
    /// <summary><c>sqlite</c> — the embedded transport in the SQLite store's own file (package Factum.Sqlite).</summary>
    Sqlite,

    /// <summary><c>memory:</c> — the in-memory transport of the core package: one process, messages lost when it ends.</summary>
    Memory,

    /// <summary><c>amqp://…</c> — RabbitMQ; recognised, but no RabbitMQ transport exists yet.</summary>
    Amqp,

    /// <summary><c>nats://…</c> — NATS JetStream; recognised, but no NATS transport exists yet.</summary>
    Nats,
}

/// <summary>
/// A validated transport connection string: <c>sqlite</c> (the SQLite store's own file), <c>memory:</c>,
/// <c>amqp://user:password@host:port/vhost</c> (also <c>amqps://</c>) or <c>nats://host:port[,host:port…]</c>.
/// </summary>
/// <remarks><see cref="ToString"/> and every error message mask the password.</remarks>
public sealed record TransportConnectionString
{
    /// <summary>The forms <see cref="Parse"/> accepts, as error messages list them.</summary>
    public const string AcceptedForms = "sqlite (the store's own SQLite file), memory:, amqp://user:password@host:port/vhost, or nats://host:port[,host:port…]";

    private TransportConnectionString(TransportKind kind) => Kind = kind;

    /// <summary>Which transport it names.</summary>
    public TransportKind Kind { get; }

    /// <summary><c>amqp://</c>, <c>nats://</c> — the servers as <c>host:port</c>, in the order written; empty otherwise.</summary>
    public IReadOnlyList<string> Servers { get; private init; } = [];

    /// <summary><c>amqps://</c> — true when TLS was asked for.</summary>
    public bool Tls { get; private init; }

    /// <summary><c>amqp://</c> — the virtual host, if written.</summary>
    public string? VirtualHost { get; private init; }

    /// <summary><c>amqp://</c>, <c>nats://</c> — the user name, if written.</summary>
    public string? UserName { get; private init; }

    /// <summary><c>amqp://</c>, <c>nats://</c> — the password, if written. <see cref="ToString"/> never prints it.</summary>
    public string? Password { get; private init; }

    /// <summary>The SQLite transport in the store's own file (<c>sqlite</c>).</summary>
    public static TransportConnectionString Sqlite { get; } = new(TransportKind.Sqlite);

    /// <summary>The in-memory transport (<c>memory:</c>).</summary>
    public static TransportConnectionString Memory { get; } = new(TransportKind.Memory);

    /// <summary>Parses and validates a transport connection string.</summary>
    /// <exception cref="FormatException">It is none of the accepted forms; the message names it (password masked) and lists them.</exception>
    public static TransportConnectionString Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        FormatException Fail(string reason) => ConnectionStrings.Invalid("transport", value, reason, AcceptedForms);
        // The two local transports are also accepted without a colon: `sqlite` is how the issue writes the default.
        var (scheme, rest) = value is "sqlite" or "memory" ? (value, "") : ConnectionStrings.SplitScheme(value, Fail);
        switch (scheme)
        {
            case "sqlite":
                return rest.Length == 0 ? Sqlite : throw Fail("the sqlite transport lives in the store's own file and takes no path; write sqlite and choose the file with the store");
            case "memory":
                return rest.Length == 0 ? Memory : throw Fail("memory: takes nothing after the colon");
            case "amqp" or "amqps":
                var a = ConnectionStrings.ParseAuthority(rest, scheme == "amqps" ? 5671 : 5672, multipleHosts: false, Fail);
                return new TransportConnectionString(TransportKind.Amqp)
                {
                    Servers = [ConnectionStrings.HostPort(a.Hosts[0].Host, a.Hosts[0].Port)],
                    Tls = scheme == "amqps",
                    VirtualHost = a.Path.Length == 0 ? null : Uri.UnescapeDataString(a.Path),
                    UserName = a.UserName,
                    Password = a.Password,
                };
            case "nats":
                var n = ConnectionStrings.ParseAuthority(rest, 4222, multipleHosts: true, Fail);
                if (n.Path.Length > 0) throw Fail("nats:// takes servers only (nats://host:port[,host:port…]), no path");
                return new TransportConnectionString(TransportKind.Nats)
                {
                    Servers = [.. n.Hosts.Select(h => ConnectionStrings.HostPort(h.Host, h.Port))],
                    UserName = n.UserName,
                    Password = n.Password,
                };
            default:
                throw Fail($"the scheme '{scheme}:' is not one Factum knows");
        }
    }

    /// <summary>The connection string in its canonical form, with the password masked as <c>***</c>.</summary>
    public override string ToString() => Kind switch
    {
        TransportKind.Sqlite => "sqlite",
        TransportKind.Memory => "memory:",
        TransportKind.Amqp => (Tls ? "amqps://" : "amqp://") + ConnectionStrings.UserInfo(UserName, Password) + Servers[0] + (VirtualHost is null ? "" : "/" + Uri.EscapeDataString(VirtualHost)),
        _ => "nats://" + ConnectionStrings.UserInfo(UserName, Password) + string.Join(',', Servers),
    };
}

/// <summary>Parsing and masking shared by the connection strings.</summary>
internal static partial class ConnectionStrings
{
    public const string MaskedPassword = "***";

    /// <summary>The error for a bad connection string: it names the string (password masked), why, and the accepted forms.</summary>
    public static FormatException Invalid(string what, string value, string reason, string accepted) =>
        new($"'{Mask(value)}' is not a {what} connection string Factum accepts: {reason}. Use {accepted}.");

    /// <summary>
    /// Hides every password in <paramref name="value"/>: the user-info password of a URL (<c>user:***@</c>) and
    /// <c>password=</c> / <c>pwd=</c> pairs. It masks too much rather than too little: everything between the user's
    /// colon and the last <c>@</c> goes, so a password holding <c>@</c> or <c>/</c> cannot leak.
    /// </summary>
    public static string Mask(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var masked = value;
        var start = masked.IndexOf("://", StringComparison.Ordinal);
        if (start >= 0)
        {
            var authority = start + 3;
            var at = masked.LastIndexOf('@');
            if (at > authority)
            {
                var colon = masked.IndexOf(':', authority, at - authority);
                if (colon >= 0) masked = masked[..(colon + 1)] + MaskedPassword + masked[at..];
            }
            else if (at < 0 && authority < masked.Length && masked[authority] != '[')
            {
                // No @: `user:secret/db` reads as host:port. A "port" that is not a number may be a password: hide it.
                var colon = masked.IndexOf(':', authority);
                var end = masked.IndexOfAny([',', '/', '?'], authority);
                if (end < 0) end = masked.Length;
                if (colon >= 0 && colon < end && !masked[(colon + 1)..end].All(char.IsAsciiDigit))
                    masked = masked[..(colon + 1)] + MaskedPassword + masked[end..];
            }
        }
        masked = PasswordPair().Replace(masked, m => m.Groups[1].Value + MaskedPassword);
        // Echoed back to a terminal: control characters are shown escaped, never sent raw.
        return masked.Any(char.IsControl) ? Escape(masked) : masked;
    }

    [GeneratedRegex("((?:password|pwd|pass)\\s*=\\s*)[^;&]*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex PasswordPair();

    private static string Escape(string s)
    {
        var b = new StringBuilder(s.Length);
        foreach (var c in s) b.Append(char.IsControl(c) ? $"\\u{(int)c:X4}" : c.ToString());
        return b.ToString();
    }

    public static (string Scheme, string Remainder) SplitScheme(string value, Func<string, FormatException> fail)
    {
        if (string.IsNullOrWhiteSpace(value)) throw fail("it is empty");
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0) throw fail("it has no scheme (such as sqlite: or memory:)");
        return (value[..colon].ToLowerInvariant(), value[(colon + 1)..]);
    }

    public static string UserInfo(string? user, string? password) =>
        user is null && password is null ? "" : Uri.EscapeDataString(user ?? "") + (password is null ? "" : ":" + MaskedPassword) + "@";

    public static string HostPort(string host, int port) =>
        (host.Contains(':', StringComparison.Ordinal) ? "[" + host + "]" : host) + ":" + port.ToString(CultureInfo.InvariantCulture);

    /// <summary>Parses <c>//[user[:password]@]host[:port][,host[:port]…][/path][?query]</c>.</summary>
    public static Authority ParseAuthority(string rest, int defaultPort, bool multipleHosts, Func<string, FormatException> fail)
    {
        if (!rest.StartsWith("//", StringComparison.Ordinal)) throw fail("the scheme must be followed by // and a host");
        rest = rest[2..];
        string? query = null;
        var q = rest.IndexOf('?', StringComparison.Ordinal);
        if (q >= 0) (rest, query) = (rest[..q], rest[(q + 1)..]);
        string? user = null, password = null;
        var at = rest.LastIndexOf('@');
        if (at >= 0)
        {
            var info = rest[..at];
            rest = rest[(at + 1)..];
            var colon = info.IndexOf(':', StringComparison.Ordinal);
            user = Uri.UnescapeDataString(colon >= 0 ? info[..colon] : info);
            if (colon >= 0) password = Uri.UnescapeDataString(info[(colon + 1)..]);
        }
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var path = slash >= 0 ? rest[(slash + 1)..] : "";
        var hostList = slash >= 0 ? rest[..slash] : rest;
        var parts = hostList.Split(',');
        if (parts.Length > 1 && !multipleHosts) throw fail("it names more than one host; write one");
        var hosts = new List<(string Host, int Port)>();
        foreach (var part in parts)
        {
            string host, port;
            if (part.StartsWith('['))
            {
                var close = part.IndexOf(']', StringComparison.Ordinal);
                if (close < 0) throw fail($"the IPv6 host '{part}' has no closing ]");
                host = part[1..close];
                port = part.Length > close + 1 && part[close + 1] == ':' ? part[(close + 2)..] : "";
            }
            else
            {
                var colon = part.LastIndexOf(':');
                (host, port) = colon >= 0 ? (part[..colon], part[(colon + 1)..]) : (part, "");
            }
            if (host.Length == 0) throw fail(parts.Length > 1 ? "a host is missing between the commas" : "it names no host");
            if (host.Any(c => char.IsControl(c) || char.IsWhiteSpace(c))) throw fail("the host has spaces or control characters");
            var p = defaultPort;
            if (port.Length > 0 && (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out p) || p is < 1 or > 65535))
                throw fail($"the port of host '{host}' is not a number from 1 to 65535");
            hosts.Add((host, p));
        }
        return new Authority(user, password, hosts, path, query);
    }

    public sealed record Authority(string? UserName, string? Password, IReadOnlyList<(string Host, int Port)> Hosts, string Path, string? Query);
}
