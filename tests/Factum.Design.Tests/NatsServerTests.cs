using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Factum.Design;
using NATS.Client.Core;

namespace Factum.Design.Tests;

/// <summary>The generated JetStream configs are created on real nats-server processes (loopback, temp folders).</summary>
public sealed class NatsServerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("factum-nats-").FullName;
    private readonly List<Process> _servers = [];

    public void Dispose()
    {
        foreach (var p in _servers)
        {
            try
            {
                if (!p.HasExited) { p.Kill(); p.WaitForExit(10_000); }
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
            p.Dispose();
        }
        Directory.Delete(_dir, true);
    }

    private static string NatsServer()
    {
        var path = new[] { "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server" }.FirstOrDefault(File.Exists);
        Assert.True(path is not null, "nats-server is not installed: run ./test.sh (it installs Debian's nats-server package).");
        return path!;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private Process Start(string name, int port, params string[] extra)
    {
        var store = Path.Combine(_dir, name);
        Directory.CreateDirectory(store);
        var psi = new ProcessStartInfo(NatsServer()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-js", "-a", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-sd", store, "-n", name }.Concat(extra)) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _servers.Add(p);
        return p;
    }

    private static async Task<NatsConnection> ConnectAsync(int port)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                var c = new NatsConnection(new NatsOpts { Url = $"nats://127.0.0.1:{port}", RequestTimeout = TimeSpan.FromSeconds(10) });
                await c.ConnectAsync();
                // JetStream answers once it is ready (in a cluster: once a meta leader is elected).
                var info = await Request(c, "$JS.API.INFO", "");
                if (info["error"] is null) return c;
                await c.DisposeAsync();
            }
            catch (NatsException) when (DateTime.UtcNow < deadline)
            {
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"nats-server on port {port} did not get JetStream ready");
            await Task.Delay(250);
        }
    }

    private static async Task<JsonNode> Request(NatsConnection c, string subject, string json)
    {
        var reply = await c.RequestAsync<byte[], byte[]>(subject, Encoding.UTF8.GetBytes(json));
        return JsonNode.Parse(reply.Data ?? [])!;
    }

    /// <summary>Creates every stream, then every consumer; returns the server's error per rejected one.</summary>
    private static async Task<List<string>> CreateAllAsync(NatsConnection c, string topology)
    {
        var rejected = new List<string>();
        var streams = JsonNode.Parse(File.ReadAllText(Path.Combine(topology, "nats", "streams.json")))!.AsArray();
        foreach (var s in streams)
        {
            var name = s!["name"]!.GetValue<string>();
            var r = await Request(c, $"$JS.API.STREAM.CREATE.{name}", s.ToJsonString());
            if (r["error"] is { } e) rejected.Add($"stream {name}: {e["description"]?.GetValue<string>()} ({e.ToJsonString()})");
        }
        var consumers = JsonNode.Parse(File.ReadAllText(Path.Combine(topology, "nats", "consumers.json")))!.AsArray();
        foreach (var k in consumers)
        {
            var stream = k!["stream_name"]!.GetValue<string>();
            var durable = k["config"]!["durable_name"]!.GetValue<string>();
            var r = await Request(c, $"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}", k.ToJsonString());
            if (r["error"] is { } e) rejected.Add($"consumer {stream}/{durable}: {e["description"]?.GetValue<string>()} ({e.ToJsonString()})");
        }
        return rejected;
    }

    private string Topology(string name, string catalogYaml, int replicas)
    {
        var outDir = Path.Combine(_dir, name);
        var catalog = catalogYaml.Length == 0 ? CatalogLoader.Load([Repo.SampleCatalog]) : CatalogLoader.Parse(catalogYaml);
        TopologyPlanner.Write(catalog, outDir, replicas: replicas);
        return outDir;
    }

    [Fact]
    public async Task Every_generated_stream_dead_letter_stream_and_consumer_is_created_on_a_single_node_server()
    {
        var port = FreePort();
        Start("single", port);
        await using var c = await ConnectAsync(port);
        foreach (var (name, yaml) in new[] { ("sample", ""), ("ordered", TopologyOrderingTests.Ordered) })
        {
            var topology = Topology(name, yaml, replicas: 1);
            Assert.Empty(await CreateAllAsync(c, topology));
            // Every consumer's dead letters have a stream of their own, and the consumer says which.
            var streams = JsonNode.Parse(File.ReadAllText(Path.Combine(topology, "nats", "streams.json")))!.AsArray().Select(s => s!["name"]!.GetValue<string>()).ToHashSet();
            foreach (var k in JsonNode.Parse(File.ReadAllText(Path.Combine(topology, "nats", "consumers.json")))!.AsArray())
            {
                var described = System.Text.RegularExpressions.Regex.Match(k!["config"]!["description"]!.GetValue<string>(), "copied to stream (\\S+)").Groups[1].Value;
                Assert.Contains(described, streams);
            }
            if (name == "sample")
            {
                var names0 = await Request(c, "$JS.API.STREAM.NAMES", "");
                Assert.Contains("DLQ_ORDERPLACED_BILLING", names0["streams"]!.AsArray().Select(n => n!.GetValue<string>()));
            }
            foreach (var s in streams) await Request(c, $"$JS.API.STREAM.DELETE.{s}", ""); // the next catalog reuses names
        }

        // The old default of three replicas is what a single server refuses: the check can fail.
        var three = Topology("three", "events: [{name: LonelyEvent, owner: t}]\nservices: [{id: s, consumes: [LonelyEvent]}]\n", replicas: 3);
        var refused = await CreateAllAsync(c, three);
        Assert.NotEmpty(refused);
        Assert.Contains("replicas > 1 not supported in non-clustered mode", string.Join("\n", refused));
    }

    [Fact]
    public async Task With_replicas_3_every_stream_and_consumer_is_created_on_a_three_node_cluster()
    {
        var ports = Enumerable.Range(0, 3).Select(_ => FreePort()).ToArray();
        var routes = Enumerable.Range(0, 3).Select(_ => FreePort()).ToArray();
        var routeList = string.Join(",", routes.Select(r => $"nats://127.0.0.1:{r}"));
        for (var i = 0; i < 3; i++)
            Start($"n{i}", ports[i], "--cluster_name", "factum-test", "--cluster", $"nats://127.0.0.1:{routes[i]}", "--routes", routeList);
        await using var c = await ConnectAsync(ports[0]);
        var topology = Topology("cluster", "", replicas: 3);
        Assert.Empty(await CreateAllAsync(c, topology));
        var info = await Request(c, "$JS.API.STREAM.INFO.ORDERPLACED", "");
        Assert.Equal(3, info["config"]!["num_replicas"]!.GetValue<int>());
    }
}
