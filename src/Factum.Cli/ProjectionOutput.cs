using Factum.Projections;
using Factum.Sqlite;

namespace Factum.Cli;

internal static class ProjectionOutput
{
    /// <summary>
    /// <c>--where PATH=VALUE</c> as a query: the documents whose field PATH is the string VALUE, in key order. A leading
    /// <c>$.</c> (the JSON-path form earlier versions took) is accepted and dropped.
    /// </summary>
    public static ProjectionQuery WhereQuery(string path, string value) =>
        ProjectionQuery.WhereEquals(path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path, value);

    public static void Print(Output output, IReadOnlyList<ProjectionInfo> rows)
    {
        if (output.Json)
        {
            foreach (var p in rows)
            {
                output.JsonLine(w =>
                {
                    w.WriteString("name", p.Name);
                    w.WriteNumber("version", p.Version);
                    w.WriteBoolean("active", p.Active);
                    w.WriteString("state", p.State);
                    w.WriteNumber("checkpoint", p.Position);
                    w.WriteNumber("head", p.Head);
                    w.WriteNumber("lag", p.Lag);
                    w.WriteNumber("documents", p.Documents);
                    if (p.FailingPosition is { } f) w.WriteNumber("failingPosition", f); else w.WriteNull("failingPosition");
                    if (p.LastError is { } e) w.WriteString("lastError", e); else w.WriteNull("lastError");
                });
            }
            return;
        }
        output.Table(["PROJECTION", "VERSION", "ACTIVE", "STATE", "CHECKPOINT", "LAG", "DOCUMENTS", "FAILING", "LAST ERROR"],
            rows.Select(p => new[]
            {
                p.Name, "v" + Output.Inv(p.Version), p.Active ? "yes" : "no", p.State, Output.Inv(p.Position), Output.Inv(p.Lag), Output.Inv(p.Documents),
                p.FailingPosition is { } f ? Output.Inv(f) : "-", p.LastError ?? "-",
            }));
        // What to do next, for the states that need someone.
        foreach (var p in rows)
        {
            if (p.State == "Faulted")
                output.Wrapped($"{p.Name} v{p.Version} stopped at position {p.FailingPosition}: {p.LastError} Fix the projection and run it again, or park that event and go on with 'factum projections skip {p.Name}'.");
            else if (p.State == "Pending")
                output.Wrapped($"{p.Name} v{p.Version} is pending: reset or skipped, it waits for its application (or 'factum projections run {p.Name}' for the demo's) to run it.");
        }
    }

    public static void WriteParked(System.Text.Json.Utf8JsonWriter w, Factum.Subscriptions.ParkedEvent p)
    {
        w.WriteString("projection", p.SubscriptionId);
        w.WriteNumber("position", p.Position.Value);
        w.WriteString("eventId", p.EventId.ToString());
        w.WriteString("streamId", p.StreamId.Value);
        w.WriteNumber("streamVersion", p.StreamVersion.Value);
        w.WriteString("type", p.Type);
        w.WriteString("errorType", p.ErrorType);
        w.WriteString("error", p.ErrorMessage);
        w.WriteNumber("attempts", p.Attempts);
        w.WriteString("parkedAt", Output.Iso(p.LastFailureAt));
    }

    public static void PrintParked(Output output, IReadOnlyList<Factum.Subscriptions.ParkedEvent> parked)
    {
        if (output.Json)
        {
            foreach (var p in parked) output.JsonLine(w => WriteParked(w, p));
            return;
        }
        output.Table(["POSITION", "STREAM", "VERSION", "TYPE", "VERSION OF PROJECTION", "PARKED AT", "ERROR"],
            parked.Select(p => new[]
            {
                Output.Inv(p.Position.Value), p.StreamId.Value, Output.Inv(p.StreamVersion.Value), p.Type, p.SubscriptionId[(p.SubscriptionId.LastIndexOf(':') + 1)..],
                Output.Iso(p.LastFailureAt), p.ErrorMessage,
            }));
    }
}
