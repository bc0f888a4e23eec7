using System.Globalization;

namespace Factum.Projections;

/// <summary>How a field is compared with a value in a <see cref="ProjectionQuery"/>.</summary>
public enum QueryOperator
{
    /// <summary>The field equals the value.</summary>
    Equal,

    /// <summary>The field is less than the value.</summary>
    LessThan,

    /// <summary>The field is less than or equal to the value.</summary>
    LessThanOrEqual,

    /// <summary>The field is greater than the value.</summary>
    GreaterThan,

    /// <summary>The field is greater than or equal to the value.</summary>
    GreaterThanOrEqual,
}

/// <summary>How SQL backends write a <see cref="QueryOperator"/>.</summary>
internal static class QueryOperatorSql
{
    /// <summary>The SQL comparison operator.</summary>
    public static string ToSql(this QueryOperator op) => op switch
    {
        QueryOperator.Equal => "=",
        QueryOperator.LessThan => "<",
        QueryOperator.LessThanOrEqual => "<=",
        QueryOperator.GreaterThan => ">",
        _ => ">=",
    };
}

/// <summary>One condition of a query: a document field compared with a value.</summary>
/// <param name="Field">The field, e.g. <c>view.customerId</c>.</param>
/// <param name="Operator">The comparison.</param>
/// <param name="Value">A string, a number (integer or floating point, compared numerically) or a bool.</param>
public sealed record FieldCondition(string Field, QueryOperator Operator, object Value);

/// <summary>
/// A backend-neutral query over a projection's documents (always the active version): conditions on fields (equality
/// and ranges, all of which must hold), an order (by a field, then by key; by key alone by default) and a page.
/// </summary>
/// <remarks>
/// <para>
/// A field is a path of JSON property names separated by dots, as the documents are stored: <c>view.customerId</c> in
/// the document <c>{"view":{"customerId":"ann"}}</c>. Names are letters, digits and '_'. A condition matches only a
/// field of the value's kind: a string matches JSON strings, a number JSON numbers, a bool JSON true/false; a document
/// without the field never matches. Strings compare by ordinal.
/// </para>
/// <para>
/// Ordering by a field puts documents without it (or with null) first, then numbers, then strings, each ascending (or
/// all descending), ties by key. Fields a projection declares in <see cref="IProjection.IndexedFields"/> are indexed by
/// the backend; any other field may be queried too, by scanning the documents.
/// </para>
/// </remarks>
public sealed record ProjectionQuery
{
    /// <summary>Every document, in key order.</summary>
    public static ProjectionQuery All { get; } = new();

    /// <summary>The conditions, all of which must hold.</summary>
    public IReadOnlyList<FieldCondition> Conditions { get; init; } = [];

    /// <summary>The field to order by (then by key); null orders by key.</summary>
    public string? OrderBy { get; init; }

    /// <summary>Descending order.</summary>
    public bool Descending { get; init; }

    /// <summary>Documents to skip (paging).</summary>
    public int Skip
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Skip is 0 or more.");
    }

    /// <summary>The most documents to return; null for all.</summary>
    public int? Take
    {
        get;
        init => field = value is null or >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Take is 0 or more.");
    }

    /// <summary>Documents whose <paramref name="field"/> equals <paramref name="value"/>.</summary>
    public static ProjectionQuery WhereEquals(string field, object value) => All.And(field, QueryOperator.Equal, value);

    /// <summary>Documents whose <paramref name="field"/> compares with <paramref name="value"/> as <paramref name="op"/> says.</summary>
    public static ProjectionQuery Where(string field, QueryOperator op, object value) => All.And(field, op, value);

    /// <summary>This query with one more condition.</summary>
    public ProjectionQuery And(string field, QueryOperator op, object value)
    {
        ValidateField(field);
        return this with { Conditions = [.. Conditions, new FieldCondition(field, op, NormalizeValue(field, value))] };
    }

    /// <summary>This query ordered by <paramref name="field"/> (then by key).</summary>
    public ProjectionQuery OrderedBy(string field, bool descending = false)
    {
        ValidateField(field);
        return this with { OrderBy = field, Descending = descending };
    }

    /// <summary>This query's page: <paramref name="take"/> documents after skipping <paramref name="skip"/>.</summary>
    public ProjectionQuery Page(int skip, int take) => this with { Skip = skip, Take = take };

    /// <summary>Throws unless every field and value is well formed (the backends call it before they query).</summary>
    /// <exception cref="ArgumentException">A field or value is not one a query takes.</exception>
    public void Validate()
    {
        foreach (var c in Conditions)
        {
            ValidateField(c.Field);
            NormalizeValue(c.Field, c.Value);
            if (!Enum.IsDefined(c.Operator)) throw new ArgumentException($"Unknown query operator {c.Operator} on field '{c.Field}'.", nameof(Conditions));
        }
        if (OrderBy is not null) ValidateField(OrderBy);
    }

    /// <summary>Throws unless <paramref name="field"/> is 1 to 16 dot-separated names of letters, digits and '_'.</summary>
    /// <exception cref="ArgumentException">The field is not a field path.</exception>
    public static void ValidateField(string field)
    {
        var parts = field?.Split('.') ?? [];
        if (string.IsNullOrEmpty(field) || field.Length > 256 || parts.Length > 16 || parts.Any(p => p.Length == 0 || !p.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')))
            throw new ArgumentException($"Unknown field '{field}': a query field is a path of JSON property names separated by dots (letters, digits and '_'), e.g. 'view.customerId'.", nameof(field));
    }

    /// <summary>The value as a query compares it: a string, a bool, a long or a double.</summary>
    internal static object NormalizeValue(string field, object? value) => value switch
    {
        string or bool or long or double => value,
        int or short or sbyte or byte or ushort or uint => Convert.ToInt64(value, CultureInfo.InvariantCulture),
        float or decimal => Convert.ToDouble(value, CultureInfo.InvariantCulture),
        ulong u when u <= long.MaxValue => (long)u,
        null => throw new ArgumentException($"A query on '{field}' compares with a value; null matches nothing (leave the condition out, or order by the field: documents without it come first).", nameof(value)),
        _ => throw new ArgumentException($"A query on '{field}' compares with a string, a number or a bool, not a {value.GetType().Name}.", nameof(value)),
    };
}
