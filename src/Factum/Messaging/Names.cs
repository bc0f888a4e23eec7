using System.Diagnostics.CodeAnalysis;

namespace Factum.Messaging;

/// <summary>Validation shared by the messaging address types.</summary>
internal static class MessagingNames
{
    public const int MaxLength = 200;

    public static string Validate(string? value, string what, bool allowSystem = false)
    {
        if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"The {what} name is empty.", nameof(value));
        if (value.Length > MaxLength) throw new ArgumentException($"The {what} name '{value[..40]}…' is {value.Length} characters; the limit is {MaxLength}.", nameof(value));
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            var ok = char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' || (allowSystem && c is '$' or '@');
            if (!ok) throw new ArgumentException($"The {what} name '{value}' contains '{c}'; use letters, digits, '.', '-' and '_'.", nameof(value));
        }
        return value;
    }
}

/// <summary>
/// A topic: the address a message is published to. By convention one topic per event type, named after the type.
/// Pub/sub subscriptions (consumer groups) each receive every message published to it; a topic declared as a stream
/// also keeps a partitioned, replayable log.
/// </summary>
public readonly record struct TopicName
{
    /// <summary>Validates and wraps <paramref name="value"/>.</summary>
    /// <exception cref="ArgumentException">Empty, too long, or with characters other than letters, digits, '.', '-' and '_'.</exception>
    public TopicName(string value) => Value = MessagingNames.Validate(value, "topic");

    /// <summary>The name.</summary>
    public string Value { get; }

    /// <inheritdoc />
    public override string ToString() => Value ?? "";

    /// <summary>Wraps a string.</summary>
    public static implicit operator TopicName(string value) => new(value);
}

/// <summary>A point-to-point queue: each message is handled by one consumer.</summary>
public readonly record struct QueueName
{
    /// <summary>Validates and wraps <paramref name="value"/>.</summary>
    /// <exception cref="ArgumentException">Empty, too long, or with characters other than letters, digits, '.', '-' and '_'.</exception>
    public QueueName(string value) => Value = MessagingNames.Validate(value, "queue");

    private QueueName(string value, bool system) => Value = MessagingNames.Validate(value, "queue", system);

    /// <summary>The name.</summary>
    public string Value { get; }

    /// <summary>True for queues Factum names itself (subscription queues <c>topic@group</c>, reply queues <c>$reply.…</c>).</summary>
    public bool IsSystem => Value.Contains('@', StringComparison.Ordinal) || Value.StartsWith('$');

    /// <summary>
    /// The queue that holds a consumer group's copy of a topic's messages (<c>topic@group</c>): pub/sub fan-out fills it;
    /// for stream groups it receives dead letters that are replayed.
    /// </summary>
    public static QueueName ForGroup(TopicName topic, GroupName group) => new($"{topic.Value}@{group.Value}", true);

    /// <summary>A reply queue for one requester instance.</summary>
    public static QueueName ForReplies(string instance) => new("$reply." + instance, true);

    /// <summary>Parses a name, accepting the system forms (<c>topic@group</c>, <c>$reply.x</c>) too.</summary>
    public static QueueName Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var at = value.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0) return ForGroup(new TopicName(value[..at]), new GroupName(value[(at + 1)..]));
        return value.StartsWith("$reply.", StringComparison.Ordinal) ? new QueueName(value, true) : new QueueName(value);
    }

    /// <summary>Splits a group queue name into its topic and group.</summary>
    public bool TryGetGroup([NotNullWhen(true)] out TopicName? topic, [NotNullWhen(true)] out GroupName? group)
    {
        var at = Value.IndexOf('@', StringComparison.Ordinal);
        if (at < 0) { topic = null; group = null; return false; }
        topic = new TopicName(Value[..at]);
        group = new GroupName(Value[(at + 1)..]);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => Value ?? "";

    /// <summary>Wraps a string.</summary>
    public static implicit operator QueueName(string value) => new(value);
}

/// <summary>A consumer group (pub/sub subscription or stream group): its members share the work, other groups get their own copy.</summary>
public readonly record struct GroupName
{
    /// <summary>Validates and wraps <paramref name="value"/>.</summary>
    public GroupName(string value) => Value = MessagingNames.Validate(value, "group");

    /// <summary>The name.</summary>
    public string Value { get; }

    /// <inheritdoc />
    public override string ToString() => Value ?? "";

    /// <summary>Wraps a string.</summary>
    public static implicit operator GroupName(string value) => new(value);
}

/// <summary>A message's unique id (UUID v7, time ordered). Redelivered and replayed copies keep it, so inboxes can deduplicate.</summary>
public readonly record struct MessageId(Guid Value) : IComparable<MessageId>
{
    /// <inheritdoc />
    public int CompareTo(MessageId other) => Value.CompareTo(other.Value);

    /// <summary>Orders ids (v7 ids sort by creation time).</summary>
    public static bool operator <(MessageId left, MessageId right) => left.CompareTo(right) < 0;

    /// <summary>Orders ids.</summary>
    public static bool operator >(MessageId left, MessageId right) => left.CompareTo(right) > 0;

    /// <summary>Orders ids.</summary>
    public static bool operator <=(MessageId left, MessageId right) => left.CompareTo(right) <= 0;

    /// <summary>Orders ids.</summary>
    public static bool operator >=(MessageId left, MessageId right) => left.CompareTo(right) >= 0;

    /// <summary>A new time-ordered id.</summary>
    public static MessageId New() => new(UuidV7.New());

    /// <summary>Parses a GUID string.</summary>
    /// <exception cref="FormatException">Not a GUID.</exception>
    public static MessageId Parse(string value) =>
        Guid.TryParse(value, out var g) ? new MessageId(g) : throw new FormatException($"'{value}' is not a message id (a GUID).");

    /// <summary>The message id an event keeps when the outbox relay publishes it.</summary>
    public static MessageId From(EventId eventId) => new(eventId.Value);

    /// <inheritdoc />
    public override string ToString() => Value.ToString();
}
