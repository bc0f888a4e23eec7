using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Factum.Tests;

/// <summary>docs/logging.md is the operator's list of what Factum logs: it must match the code, id by id.</summary>
public sealed class LoggingDocsTests
{
    private static string Docs()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Factum.slnx"))) dir = dir.Parent;
        return File.ReadAllText(Path.Combine(dir!.FullName, "docs", "logging.md"));
    }

    private static List<(int Id, string Name, LogLevel Level)> Messages() =>
        typeof(FactumLogEvents).Assembly.GetType("Factum.FactumLog")!
            .GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(x => x.Attribute is not null)
            .Select(x => (x.Attribute!.EventId, x.Method.Name, x.Attribute.Level))
            .ToList();

    [Fact]
    public void Every_logged_event_id_is_documented_with_its_name_and_level()
    {
        var docs = Docs();
        var rows = Regex.Matches(docs, @"^\| (\d{4}) \| (\w+) \| (\w+) \| ([\w.]+) \|", RegexOptions.Multiline)
            .ToDictionary(m => int.Parse(m.Groups[1].Value), m => (Name: m.Groups[2].Value, Level: m.Groups[3].Value));
        var messages = Messages();
        Assert.Equal(messages.Count, messages.Select(m => m.Id).Distinct().Count()); // one meaning per id
        foreach (var (id, name, level) in messages)
        {
            Assert.True(rows.TryGetValue(id, out var row), $"event id {id} ({name}) is not in docs/logging.md");
            Assert.Equal((name, level.ToString()), row);
        }
        Assert.Equal(messages.Select(m => m.Id).Order(), rows.Keys.Order()); // no documented id that nothing logs
    }

    [Fact]
    public void Every_public_event_id_constant_is_logged()
    {
        var constants = typeof(FactumLogEvents).GetFields(BindingFlags.Public | BindingFlags.Static)
            .ToDictionary(f => f.Name, f => (int)f.GetValue(null)!);
        var messages = Messages();
        Assert.Equal(constants.OrderBy(c => c.Value).Select(c => (c.Value, c.Key)), messages.OrderBy(m => m.Id).Select(m => (m.Id, m.Name)));
    }
}
