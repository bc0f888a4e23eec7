using System.Text.Json;
using Factum.Tracing;

namespace Factum.Cli;

internal static class TraceJson
{
    public static void Write(Utf8JsonWriter w, CausationTree tree)
    {
        w.WriteString("correlationId", tree.CorrelationId);
        w.WriteNumber("events", tree.Count);
        w.WriteStartArray("roots");
        foreach (var r in tree.Roots) Node(w, r);
        w.WriteEndArray();
    }

    private static void Node(Utf8JsonWriter w, CausationNode n)
    {
        var e = n.Event;
        w.WriteStartObject();
        w.WriteString("eventId", e.EventId.ToString());
        w.WriteString("type", e.Type);
        w.WriteString("streamId", e.StreamId.Value);
        w.WriteNumber("streamVersion", e.StreamVersion.Value);
        w.WriteNumber("position", e.Position.Value);
        w.WriteString("timestamp", Output.Iso(e.Timestamp));
        if (e.CausationId is null) w.WriteNull("causationId"); else w.WriteString("causationId", e.CausationId);
        w.WriteStartArray("caused");
        foreach (var c in n.Children) Node(w, c);
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
