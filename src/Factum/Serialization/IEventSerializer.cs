using System.Text.Json;
using System.Text.Json.Serialization;

namespace Factum;

/// <summary>Turns event objects into payload bytes and back. Implement it to plug in another format.</summary>
public interface IEventSerializer
{
    /// <summary>The MIME type of the payloads, e.g. <c>application/json</c>.</summary>
    string ContentType { get; }

    /// <summary>Serializes <paramref name="value"/> as <paramref name="type"/>.</summary>
    byte[] Serialize(object value, Type type);

    /// <summary>Deserializes a payload into <paramref name="type"/>.</summary>
    object? Deserialize(ReadOnlySpan<byte> payload, Type type);
}

/// <summary>The default serializer: System.Text.Json with web defaults (camelCase), enums as strings.</summary>
public sealed class SystemTextJsonEventSerializer : IEventSerializer
{
    /// <summary>The shared default instance.</summary>
    public static SystemTextJsonEventSerializer Default { get; } = new();

    /// <summary>Creates a serializer; <paramref name="options"/> defaults to web defaults with string enums.</summary>
    public SystemTextJsonEventSerializer(JsonSerializerOptions? options = null)
    {
        Options = options ?? new JsonSerializerOptions(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };
        Options.MakeReadOnly(populateMissingResolver: true);
    }

    /// <summary>The options in use.</summary>
    public JsonSerializerOptions Options { get; }

    /// <inheritdoc />
    public string ContentType => "application/json";

    /// <inheritdoc />
    public byte[] Serialize(object value, Type type) => JsonSerializer.SerializeToUtf8Bytes(value, type, Options);

    /// <inheritdoc />
    public object? Deserialize(ReadOnlySpan<byte> payload, Type type) => JsonSerializer.Deserialize(payload, type, Options);
}
