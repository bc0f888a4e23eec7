using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Factum.Design;

/// <summary>Renders lint findings as text, JSON or SARIF 2.1.0 (for code-scanning UIs).</summary>
public static class FindingsReport
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Human-readable: one block per finding, then a summary line.</summary>
    public static string Text(IReadOnlyList<Finding> findings)
    {
        ArgumentNullException.ThrowIfNull(findings);
        var sb = new StringBuilder();
        foreach (var f in findings)
        {
            sb.Append(f.Severity.ToString().ToLowerInvariant()).Append(' ').Append(f.Rule).Append(": ").Append(f.Entity).Append(' ').Append(f.Message);
            if (f.Source is not null) sb.Append(" (").Append(f.Source).Append(')');
            sb.AppendLine();
            sb.Append("  why: ").AppendLine(f.Why);
            sb.Append("  fix: ").AppendLine(f.Fix);
        }
        sb.AppendLine($"{findings.Count(f => f.Severity == Severity.Error)} error(s), {findings.Count(f => f.Severity == Severity.Warning)} warning(s), {findings.Count(f => f.Severity == Severity.Note)} note(s)");
        return sb.ToString();
    }

    /// <summary>One JSON document: <c>{findings: [...], errors, warnings, notes}</c>.</summary>
    public static string Json(IReadOnlyList<Finding> findings)
    {
        ArgumentNullException.ThrowIfNull(findings);
        var doc = new JsonObject
        {
            ["findings"] = new JsonArray(findings.Select(f => (JsonNode)new JsonObject
            {
                ["rule"] = f.Rule,
                ["severity"] = f.Severity.ToString().ToLowerInvariant(),
                ["entity"] = f.Entity,
                ["message"] = f.Message,
                ["why"] = f.Why,
                ["fix"] = f.Fix,
                ["file"] = f.Source?.File,
                ["line"] = f.Source?.Line,
            }).ToArray()),
            ["errors"] = findings.Count(f => f.Severity == Severity.Error),
            ["warnings"] = findings.Count(f => f.Severity == Severity.Warning),
            ["notes"] = findings.Count(f => f.Severity == Severity.Note),
        };
        return doc.ToJsonString(Indented);
    }

    /// <summary>SARIF 2.1.0: one run of the tool <c>factum-catalog-lint</c> with every rule described.</summary>
    public static string Sarif(IReadOnlyList<Finding> findings)
    {
        ArgumentNullException.ThrowIfNull(findings);
        static string Level(Severity s) => s switch { Severity.Error => "error", Severity.Warning => "warning", _ => "note" };
        var doc = new JsonObject
        {
            ["$schema"] = "https://json.schemastore.org/sarif-2.1.0.json",
            ["version"] = "2.1.0",
            ["runs"] = new JsonArray(new JsonObject
            {
                ["tool"] = new JsonObject
                {
                    ["driver"] = new JsonObject
                    {
                        ["name"] = "factum-catalog-lint",
                        ["informationUri"] = "https://github.com/factum/factum/blob/main/docs/catalog.md",
                        ["rules"] = new JsonArray(LintRules.All.Select(r => (JsonNode)new JsonObject
                        {
                            ["id"] = r.Id,
                            ["shortDescription"] = new JsonObject { ["text"] = r.Title },
                            ["fullDescription"] = new JsonObject { ["text"] = r.Why },
                            ["help"] = new JsonObject { ["text"] = r.Fix },
                            ["defaultConfiguration"] = new JsonObject { ["level"] = Level(r.Severity) },
                        }).ToArray()),
                    },
                },
                ["results"] = new JsonArray(findings.Select(f =>
                {
                    var result = new JsonObject
                    {
                        ["ruleId"] = f.Rule,
                        ["level"] = Level(f.Severity),
                        ["message"] = new JsonObject { ["text"] = $"{f.Entity} {f.Message}. Why: {f.Why} Fix: {f.Fix}" },
                    };
                    if (f.Source is { } src)
                    {
                        var physical = new JsonObject { ["artifactLocation"] = new JsonObject { ["uri"] = src.File.Replace('\\', '/') } };
                        if (src.Line > 0) physical["region"] = new JsonObject { ["startLine"] = src.Line };
                        result["locations"] = new JsonArray(new JsonObject { ["physicalLocation"] = physical });
                    }
                    return (JsonNode)result;
                }).ToArray()),
            }),
        };
        return doc.ToJsonString(Indented);
    }
}
