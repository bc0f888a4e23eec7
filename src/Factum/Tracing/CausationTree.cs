namespace Factum.Tracing;

/// <summary>A store that can find every event of one business process (one correlation id) without scanning the log.</summary>
public interface ICorrelationIndex
{
    /// <summary>The events carrying <paramref name="correlationId"/>, in position order.</summary>
    IAsyncEnumerable<RecordedEvent> ReadCorrelatedAsync(string correlationId, CancellationToken cancellationToken = default);
}

/// <summary>One event in a causation tree and the events it caused.</summary>
/// <param name="Event">The event.</param>
/// <param name="Children">The events whose causation id is this event's id, in position order.</param>
public sealed record CausationNode(RecordedEvent Event, IReadOnlyList<CausationNode> Children);

/// <summary>
/// The causation tree of a business process: which event caused which, across streams. Roots are events with no cause,
/// or whose cause is not an event of this process (a command id, say) — they are listed with that external cause.
/// </summary>
/// <param name="CorrelationId">The process.</param>
/// <param name="Roots">The events that started it (or whose causes lie outside the store), in position order.</param>
/// <param name="Count">Events in the process.</param>
public sealed record CausationTree(string CorrelationId, IReadOnlyList<CausationNode> Roots, int Count)
{
    /// <summary>Builds the tree of <paramref name="correlationId"/> from the store's correlation index.</summary>
    public static async Task<CausationTree> BuildAsync(ICorrelationIndex index, string correlationId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(index);
        ArgumentException.ThrowIfNullOrWhiteSpace(correlationId);
        var events = new List<RecordedEvent>();
        await foreach (var e in index.ReadCorrelatedAsync(correlationId, cancellationToken).ConfigureAwait(false)) events.Add(e);
        return Build(correlationId, events);
    }

    /// <summary>Builds the tree from the events of one process (any order).</summary>
    public static CausationTree Build(string correlationId, IEnumerable<RecordedEvent> events)
    {
        var ordered = events.OrderBy(e => e.Position).ToList();
        var ids = ordered.Select(e => e.EventId.ToString()).ToHashSet(StringComparer.Ordinal);
        var children = ordered.Where(e => e.CausationId is { } c && ids.Contains(c)).ToLookup(e => e.CausationId!, StringComparer.Ordinal);
        var visiting = new HashSet<string>(StringComparer.Ordinal);
        CausationNode Node(RecordedEvent e)
        {
            var id = e.EventId.ToString();
            // Causation ids are data: a cycle written by a buggy producer must not hang the trace.
            if (!visiting.Add(id)) return new CausationNode(e, []);
            var node = new CausationNode(e, children[id].Select(Node).ToList());
            visiting.Remove(id);
            return node;
        }
        var roots = ordered.Where(e => e.CausationId is null || !ids.Contains(e.CausationId)).Select(Node).ToList();
        return new CausationTree(correlationId, roots, ordered.Count);
    }

    /// <summary>Renders the tree as indented text: time, stream@version, type, and the external cause of roots.</summary>
    public string Render()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"correlation {CorrelationId}: {Count} event(s)").AppendLine();
        void Walk(CausationNode n, string indent, bool last, bool root)
        {
            var e = n.Event;
            var branch = root ? "" : last ? "└─ " : "├─ ";
            var external = root && e.CausationId is { } c ? $"  (caused by {c})" : "";
            sb.Append(indent).Append(branch)
              .Append(System.Globalization.CultureInfo.InvariantCulture, $"{e.Timestamp.UtcDateTime:yyyy-MM-dd HH:mm:ss.fff}  {e.Type}  {e.StreamId}@{e.StreamVersion}  #{e.Position}{external}")
              .AppendLine();
            var childIndent = root ? indent : indent + (last ? "   " : "│  ");
            for (var i = 0; i < n.Children.Count; i++) Walk(n.Children[i], childIndent, i == n.Children.Count - 1, false);
        }
        foreach (var r in Roots) Walk(r, "", true, true);
        return sb.ToString();
    }
}
