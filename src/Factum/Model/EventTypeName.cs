namespace Factum;

/// <summary>Rules for the event type names the store accepts (the naming convention itself is checked by <see cref="EventTypeRegistry"/>).</summary>
public static class EventTypeName
{
    /// <summary>The longest type name accepted.</summary>
    public const int MaxLength = 256;

    /// <summary>Throws <see cref="ArgumentException"/> naming what is wrong with <paramref name="type"/>.</summary>
    public static void Validate(string? type)
    {
        if (TryValidate(type, out var error)) return;
        throw new ArgumentException(error, nameof(type));
    }

    /// <summary>Checks a type name without throwing.</summary>
    public static bool TryValidate(string? type, out string? error)
    {
        if (string.IsNullOrEmpty(type)) { error = "An event type name must not be empty."; return false; }
        if (type.Length > MaxLength) { error = $"An event type name is at most {MaxLength} characters; '{JsonText.Printable(type[..40])}…' has {type.Length}."; return false; }
        foreach (var c in type)
        {
            if (char.IsControl(c) || char.IsWhiteSpace(c))
            {
                error = $"An event type name must not contain whitespace or control characters: '{JsonText.Printable(type)}'.";
                return false;
            }
        }
        if (!JsonText.IsWellFormed(type)) { error = "An event type name must be well-formed Unicode (it holds a lone surrogate)."; return false; }
        error = null;
        return true;
    }
}
