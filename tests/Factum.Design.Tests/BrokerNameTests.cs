using System.Text.Json.Nodes;
using Factum.Design;

namespace Factum.Design.Tests;

/// <summary>Names from a catalog or a store reach generated scripts and configs quoted, and the lint refuses names brokers do not accept.</summary>
public sealed class BrokerNameTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("factum-names-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private const string Injection = "OrderPlaced;touch${IFS}pwned;#";

    private static readonly string[] Hostile = [Injection, "$(touch pwned)", "`touch pwned`", "it's", "a b", "x\ntouch pwned", "--help", "*"];

    private static EventCatalogModel Catalog(IEnumerable<string> names, string group = "billing;touch pwned") => new()
    {
        Services = [new CatalogService { Id = "orders", Publishes = names.ToList() }, new CatalogService { Id = group, Consumes = names.ToList() }],
        Messages = names.Select(n => new CatalogMessage { Name = n, Owners = ["t"], Versions = [new MessageVersion(1, new JsonObject { ["type"] = "object" }, null)] }).ToList(),
    };

    private static (int Exit, string Output) Run(string file, string workingDirectory, string? path = null, params string[] args) => Repo.Run(file, workingDirectory, path, args);

    [Fact]
    public void The_kafka_script_passes_every_name_as_one_argument_and_runs_nothing_else()
    {
        TopologyPlanner.Write(Catalog(Hostile), _dir);
        var script = Path.Combine(_dir, "kafka", "create-topics.sh");
        var (syntax, syntaxOutput) = Run("bash", _dir, null, "-n", script);
        Assert.True(syntax == 0, syntaxOutput);

        // A stand-in kafka-topics.sh on PATH records each argument it receives, NUL-separated.
        var bin = Path.Combine(_dir, "bin");
        Directory.CreateDirectory(bin);
        var stub = Path.Combine(bin, "kafka-topics.sh");
        var log = Path.Combine(_dir, "args.log");
        File.WriteAllText(stub, $"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\" >> '{log}'; done\nprintf 'END\\0' >> '{log}'\n");
        Assert.Equal(0, Run("chmod", _dir, null, "+x", stub).Exit);
        var work = Path.Combine(_dir, "work");
        Directory.CreateDirectory(work);
        var (exit, output) = Run("bash", work, bin, script);
        Assert.True(exit == 0, output);

        Assert.False(File.Exists(Path.Combine(work, "pwned")), "a name was run as a command");
        Assert.Empty(Directory.EnumerateFileSystemEntries(work));
        var calls = File.ReadAllText(log).Split("END\0", StringSplitOptions.RemoveEmptyEntries).Select(c => c.TrimEnd('\0').Split('\0')).ToList();
        var topics = calls.Select(args => args[Array.IndexOf(args, "--topic") + 1]).ToList();
        foreach (var name in Hostile)
        {
            Assert.Contains(name, topics);
            Assert.Contains($"{name}.billing;touch pwned.dlq", topics);
        }
        // Every call got exactly its fixed argument list (14 for a topic, 12 for a dead-letter topic): no name was split or merged.
        Assert.All(calls, args => Assert.Contains(args.Length, new[] { 12, 14 }));
    }

    [Fact]
    public void Strimzi_yaml_keeps_each_name_a_single_string()
    {
        TopologyPlanner.Write(Catalog(Hostile), _dir);
        var yaml = new YamlDotNet.RepresentationModel.YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(Path.Combine(_dir, "kafka", "strimzi-topics.yaml"))));
        var topicNames = yaml.Documents.Select(d => ((YamlDotNet.RepresentationModel.YamlScalarNode)d.RootNode["spec"]["topicName"]).Value).ToList();
        foreach (var name in Hostile) Assert.Contains(name, topicNames);
    }

    [Theory]
    [InlineData("OrderPlaced", null)]
    [InlineData("Orders.Placed-v2_x", null)]
    [InlineData(Injection, "Kafka topic name: it contains ';', '$', '{', '}'")]
    [InlineData("Order Placed", "NATS subject prefix: it contains U+0020")]
    [InlineData("Order*", "NATS subject prefix: it contains '*'")]
    [InlineData("Orders>", "NATS subject prefix")]
    [InlineData("Orders.", "NATS subject prefix: it has an empty token")]
    [InlineData("..", "Kafka topic name: '.' and '..' are reserved")]
    [InlineData("Überweisung", "Kafka topic name: it contains 'Ü'")]
    public void Message_names_are_checked_against_each_broker(string name, string? problem)
    {
        var findings = LintRules.Lint(Catalog([name], "billing")).Where(f => f.Rule == LintRules.BrokerNameRule).ToList();
        if (problem is null) Assert.Empty(findings);
        else Assert.Contains(findings, f => f.Severity == Severity.Error && f.Entity == $"event {name}" && f.Message.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void Length_limits_are_per_broker()
    {
        var longest = new string('a', LintRules.KafkaMaxName);
        Assert.DoesNotContain(LintRules.Lint(Catalog([longest], "b")), f => f.Rule == LintRules.BrokerNameRule && f.Message.Contains("Kafka topic name", StringComparison.Ordinal));
        Assert.Contains(LintRules.Lint(Catalog([longest + "a"], "b")), f => f.Rule == LintRules.BrokerNameRule && f.Message.Contains("250 characters long (at most 249)", StringComparison.Ordinal));
        // Within Kafka's limit, but its group's dead-letter topic and RabbitMQ queue are not.
        var findings = LintRules.Lint(Catalog([new string('a', 245)], "billing")).Where(f => f.Rule == LintRules.BrokerNameRule).ToList();
        Assert.Contains(findings, f => f.Message.Contains("dead-letter topic", StringComparison.Ordinal) && f.Message.Contains("Kafka allows at most 249", StringComparison.Ordinal));
        Assert.Contains(findings, f => f.Message.Contains("UTF-8 bytes long; RabbitMQ allows at most 255", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("billing", null)]
    [InlineData("billing-v2_eu", null)]
    [InlineData("billing.eu", "NATS durable consumer name: it contains '.'")]
    [InlineData("billing/eu", "Kafka dead-letter topics' names: it contains '/'")]
    [InlineData("bill ing", "NATS durable consumer name: it contains U+0020")]
    public void Consuming_service_ids_are_checked_as_group_names(string group, string? problem)
    {
        var findings = LintRules.Lint(Catalog(["OrderPlaced"], group)).Where(f => f.Rule == LintRules.BrokerNameRule).ToList();
        if (problem is null) Assert.Empty(findings);
        else Assert.Contains(findings, f => f.Entity == $"service {group}" && f.Message.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void Discovered_yaml_reads_back_every_name_as_it_was()
    {
        string[] names = [.. Hostile, "quote\"d", "new\u2028line", "tab\tand\u0001control", "# not a comment", "- not a list"];
        var catalog = Catalog(names) with { Domains = [new CatalogDomain("d\r\nx: injected", "n'ame", "line one\nline two", null)] };
        var back = CatalogLoader.Parse(Discovery.ToYaml(catalog, "header with a\rcarriage return and\u0085next line"));
        Assert.Equal(names.Order(StringComparer.Ordinal), back.Messages.Select(m => m.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["orders", "billing;touch pwned"], back.Services.Select(s => s.Id));
        var domain = Assert.Single(back.Domains);
        Assert.Equal(("d\r\nx: injected", "n'ame", "line one\nline two"), (domain.Id, domain.Name, domain.Description));
    }
}
