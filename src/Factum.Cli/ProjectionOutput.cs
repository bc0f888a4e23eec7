using Factum.Projections;
using Factum.Sqlite;

namespace Factum.Cli;

internal static class ProjectionOutput
{
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
    }
}
