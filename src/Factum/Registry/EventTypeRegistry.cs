using System.Collections.Concurrent;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Factum;

/// <summary>An event read from the store and, when its type is registered, deserialized at its latest schema version.</summary>
/// <param name="Record">The stored event, untouched.</param>
/// <param name="Event">The deserialized event, or null when its type is unknown (the raw record is still returned, never dropped).</param>
/// <param name="Info">The registration used, or null.</param>
/// <param name="Problem">Why the event could not be deserialized, or null.</param>
public sealed record DecodedEvent(RecordedEvent Record, object? Event, EventTypeInfo? Info, string? Problem)
{
    /// <summary>True when <see cref="Event"/> holds a typed event.</summary>
    public bool IsKnown => Event is not null;
}

/// <summary>
/// The code-first catalog of event types: CLR type ↔ stored name and schema version, classification and owner,
/// plus the upcasters that turn old schema versions into the latest one on read.
/// </summary>
/// <remarks>Register everything at start-up; lookups are thread-safe afterwards.</remarks>
public sealed class EventTypeRegistry
{
    private readonly ConcurrentDictionary<string, EventTypeInfo> _byName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Type, EventTypeInfo> _byType = new();
    private readonly ConcurrentDictionary<(string Name, int FromVersion), Func<JsonNode, JsonNode>> _upcasters = new();

    /// <summary>Creates a registry using <paramref name="serializer"/> (default: System.Text.Json).</summary>
    public EventTypeRegistry(IEventSerializer? serializer = null) => Serializer = serializer ?? SystemTextJsonEventSerializer.Default;

    /// <summary>The payload serializer.</summary>
    public IEventSerializer Serializer { get; }

    /// <summary>Every registered type (latest versions).</summary>
    public IReadOnlyCollection<EventTypeInfo> Types => _byName.Values.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();

    /// <summary>Registers <typeparamref name="T"/>: from its <see cref="EventTypeAttribute"/> if present, else named after the CLR type.</summary>
    /// <exception cref="ArgumentException">The name breaks the naming convention (see <see cref="EventNamingConvention"/>) or is already taken.</exception>
    public EventTypeRegistry Register<T>(Action<EventTypeOptions>? configure = null) => Register(typeof(T), configure);

    /// <summary>Registers <paramref name="clrType"/> (see <see cref="Register{T}"/>).</summary>
    public EventTypeRegistry Register(Type clrType, Action<EventTypeOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(clrType);
        var attr = clrType.GetCustomAttribute<EventTypeAttribute>();
        var options = new EventTypeOptions
        {
            Name = attr?.Name ?? clrType.Name,
            Version = attr?.Version ?? 1,
            Classification = attr?.Classification ?? EventClassification.Domain,
            Owner = attr?.Owner,
            Description = attr?.Description,
            AllowNonConventionalName = attr?.AllowNonConventionalName ?? false,
            Kind = attr?.Kind ?? MessageKind.Event,
        };
        configure?.Invoke(options);
        EventTypeName.Validate(options.Name);
        if (options.Version < 1) throw new ArgumentException($"Event type '{options.Name}': the schema version is {options.Version}; it must be 1 or more.", nameof(configure));
        if (options.Kind == MessageKind.Event && !options.AllowNonConventionalName && EventNamingConvention.Check(options.Name) is { } why)
            throw new ArgumentException($"Event type {clrType.Name} cannot be registered: {why}. Set AllowNonConventionalName to keep a legacy name.", nameof(clrType));
        var info = new EventTypeInfo(options.Name, options.Version, clrType, options.Classification, options.Owner, options.Description) { Kind = options.Kind };
        if (_byName.TryGetValue(info.Name, out var existing) && existing.ClrType != clrType)
            throw new ArgumentException($"Event type name '{info.Name}' is already registered for {existing.ClrType.FullName}; {clrType.FullName} cannot take it too. Register older schema versions with AddUpcaster instead.", nameof(clrType));
        _byName[info.Name] = info;
        _byType[clrType] = info;
        return this;
    }

    /// <summary>Registers every type of <paramref name="assembly"/> that carries <see cref="EventTypeAttribute"/>.</summary>
    public EventTypeRegistry RegisterAssembly(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        foreach (var t in assembly.GetTypes().Where(t => t.GetCustomAttribute<EventTypeAttribute>() is not null)) Register(t);
        return this;
    }

    /// <summary>
    /// Adds a JSON-level upcaster for <paramref name="typeName"/> from schema version <paramref name="fromVersion"/> to the next.
    /// Steps chain: v1 → v2 → v3 runs two upcasters.
    /// </summary>
    public EventTypeRegistry AddUpcaster(string typeName, int fromVersion, Func<JsonObject, JsonObject> upcast)
    {
        ArgumentNullException.ThrowIfNull(upcast);
        EventTypeName.Validate(typeName);
        if (fromVersion < 1) throw new ArgumentOutOfRangeException(nameof(fromVersion), fromVersion, "Upcasters start from version 1 or more.");
        if (!_upcasters.TryAdd((typeName, fromVersion), node => upcast(node as JsonObject ?? throw new JsonException($"'{typeName}' v{fromVersion} payload is not a JSON object."))))
            throw new ArgumentException($"An upcaster from '{typeName}' v{fromVersion} is already registered.", nameof(fromVersion));
        return this;
    }

    /// <summary>
    /// Adds a typed upcaster: the stored payload of <typeparamref name="TNew"/>'s type name at <paramref name="fromVersion"/> is read as
    /// <typeparamref name="TOld"/> and converted. <typeparamref name="TOld"/> needs no registration of its own.
    /// </summary>
    public EventTypeRegistry AddUpcaster<TOld, TNew>(int fromVersion, Func<TOld, TNew> upcast)
    {
        ArgumentNullException.ThrowIfNull(upcast);
        var name = GetInfo(typeof(TNew))?.Name ?? throw new ArgumentException($"Register {typeof(TNew).Name} before adding an upcaster that produces it.", nameof(upcast));
        var options = (Serializer as SystemTextJsonEventSerializer)?.Options ?? SystemTextJsonEventSerializer.Default.Options;
        return AddUpcaster(name, fromVersion, node =>
        {
            var old = node.Deserialize<TOld>(options) ?? throw new JsonException($"'{name}' v{fromVersion} payload deserialized to null.");
            return JsonSerializer.SerializeToNode(upcast(old), options) as JsonObject ?? throw new JsonException($"Upcaster from '{name}' v{fromVersion} produced no JSON object.");
        });
    }

    /// <summary>The registration of <paramref name="clrType"/>, or null.</summary>
    public EventTypeInfo? GetInfo(Type clrType) => _byType.GetValueOrDefault(clrType);

    /// <summary>Finds a registration by stored name.</summary>
    public bool TryGet(string name, out EventTypeInfo info) => _byName.TryGetValue(name, out info!);

    /// <summary>Builds the <see cref="EventData"/> to append for a registered event object.</summary>
    /// <exception cref="InvalidOperationException">The event's type is not registered.</exception>
    public EventData Encode<T>(T @event, EventId? eventId = null, IReadOnlyDictionary<string, string>? metadata = null) where T : notnull
    {
        var type = @event.GetType();
        var info = GetInfo(type) ?? throw new InvalidOperationException($"{type.FullName} is not a registered event type; call Register<{type.Name}>() first.");
        return new EventData(info.Name, Serializer.Serialize(@event, type))
        {
            EventId = eventId ?? EventId.New(),
            SchemaVersion = info.Version,
            Metadata = metadata ?? EmptyMetadata.Instance,
        };
    }

    /// <summary>
    /// Deserializes a stored event at its type's latest schema version, running the upcaster chain for older versions.
    /// Unknown types, newer versions and undecodable payloads come back raw, with <see cref="DecodedEvent.Problem"/> saying why.
    /// </summary>
    public DecodedEvent Decode(RecordedEvent record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var (value, info, problem) = DecodePayload(record.Type, record.SchemaVersion, record.Payload);
        return new DecodedEvent(record, value, info, problem);
    }

    /// <summary>
    /// Deserializes a payload of type <paramref name="typeName"/> written at <paramref name="schemaVersion"/>, upcasting it
    /// to the registered version. Returns the value, or null and why not (unknown type, newer version, bad payload).
    /// </summary>
    public (object? Value, EventTypeInfo? Info, string? Problem) DecodePayload(string typeName, int schemaVersion, ReadOnlyMemory<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(typeName);
        if (!_byName.TryGetValue(typeName, out var info)) return (null, null, $"type '{typeName}' is not registered");
        if (schemaVersion > info.Version)
            return (null, info, $"'{typeName}' v{schemaVersion} is newer than the registered v{info.Version}");
        try
        {
            if (schemaVersion == info.Version) return (Serializer.Deserialize(payload.Span, info.ClrType) ?? throw new JsonException("The payload is JSON null."), info, null);
            var node = JsonNode.Parse(payload.Span) ?? throw new JsonException("The payload is JSON null.");
            for (var v = schemaVersion; v < info.Version; v++)
            {
                if (!_upcasters.TryGetValue((typeName, v), out var step))
                    return (null, info, $"no upcaster from '{typeName}' v{v} to v{v + 1}");
                node = step(node);
            }
            var bytes = JsonSerializer.SerializeToUtf8Bytes(node);
            return (Serializer.Deserialize(bytes, info.ClrType), info, null);
        }
        catch (JsonException ex)
        {
            return (null, info, $"payload of '{typeName}' v{schemaVersion} could not be decoded: {ex.Message}");
        }
        catch (Exception ex) when (ex is InvalidOperationException or NullReferenceException or FormatException or InvalidCastException or ArgumentException or KeyNotFoundException or OverflowException or NotSupportedException)
        {
            // An upcaster (user code) or the serializer met a shape it does not expect: the payload is unreadable in
            // this service — a poison message with a reason, not an exception thrown into the handler pipeline.
            return (null, info, $"payload of '{typeName}' v{schemaVersion} could not be upcast or decoded: {ex.GetType().Name}: {ex.Message}");
        }
    }
}

/// <summary>Registration settings for one event type.</summary>
public sealed class EventTypeOptions
{
    /// <summary>The stored type name.</summary>
    public required string Name { get; set; }

    /// <summary>The schema version the CLR type represents.</summary>
    public int Version { get; set; } = 1;

    /// <summary>Domain, integration or system.</summary>
    public EventClassification Classification { get; set; }

    /// <summary>The owning team or service.</summary>
    public string? Owner { get; set; }

    /// <summary>What the fact means.</summary>
    public string? Description { get; set; }

    /// <summary>Skip the past-tense naming check.</summary>
    public bool AllowNonConventionalName { get; set; }

    /// <summary>Event (default; named in the past tense), command or query.</summary>
    public MessageKind Kind { get; set; }
}
