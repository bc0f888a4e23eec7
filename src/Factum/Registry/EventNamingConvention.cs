namespace Factum;

/// <summary>
/// The event naming convention: PascalCase and past tense, because an event is a fact that already happened
/// (<c>OrderPlaced</c>, not <c>PlaceOrder</c>, <c>OrderCreate</c> or <c>GetOrder</c>).
/// </summary>
public static class EventNamingConvention
{
    // Past forms that do not end in "-ed"; enough to accept the usual domain verbs.
    private static readonly HashSet<string> IrregularPast = new(StringComparer.Ordinal)
    {
        "Begun", "Bought", "Brought", "Built", "Caught", "Chosen", "Come", "Cut", "Dealt", "Done", "Drawn", "Driven", "Eaten",
        "Fallen", "Felt", "Found", "Forgotten", "Forgiven", "Frozen", "Given", "Gone", "Grown", "Held", "Hidden", "Hit", "Hung",
        "Kept", "Known", "Laid", "Led", "Left", "Lent", "Lost", "Made", "Meant", "Met", "Paid", "Put", "Quit", "Read", "Rebuilt",
        "Reset", "Rewritten", "Ridden", "Risen", "Run", "Said", "Seen", "Sent", "Set", "Shaken", "Shown", "Shut", "Sold", "Spent",
        "Split", "Spoken", "Spun", "Stolen", "Struck", "Sworn", "Taken", "Taught", "Thrown", "Told", "Torn", "Undone", "Understood",
        "Upheld", "Withdrawn", "Won", "Worn", "Written", "Overridden", "Overpaid", "Underpaid", "Prepaid", "Outbid", "Bid", "Broadcast",
        "Forecast", "Shipped", "Began", "Became", "Took", "Gave", "Wrote", "Sold", "Rebound", "Bound", "Sought", "Fed", "Fled", "Wound",
    };

    // Nouns and verbs that end in "-ed" without being a past tense.
    private static readonly HashSet<string> FalsePast = new(StringComparer.Ordinal)
    {
        "Bed", "Feed", "Need", "Seed", "Speed", "Breed", "Greed", "Weed", "Shed", "Red", "Bred", "Embed", "Deed", "Creed", "Reed", "Med", "Ted",
    };

    private static readonly HashSet<string> Particles = new(StringComparer.Ordinal) { "Out", "Up", "In", "Off", "On", "Down", "Back", "Over", "Away", "Through" };

    /// <summary>Returns null when <paramref name="name"/> follows the convention, otherwise why it does not.</summary>
    public static string? Check(string name)
    {
        if (string.IsNullOrEmpty(name)) return "the name is empty";
        if (!char.IsAsciiLetterUpper(name[0]) || !name.All(char.IsAsciiLetterOrDigit))
            return $"'{name}' is not PascalCase (letters and digits only, starting with a capital), e.g. OrderPlaced";
        var words = SplitWords(name);
        var last = words[^1];
        if (IsPast(last)) return null;
        // Phrasal verbs: CartCheckedOut, UserSignedUp, DriverLoggedIn.
        if (words.Count > 1 && Particles.Contains(last) && IsPast(words[^2])) return null;
        var first = words[0];
        if (words.Count > 1 && !IsPast(first) && LooksImperative(first))
            return $"'{name}' reads as a command ('{first} …'); an event names a fact that happened, in the past tense, e.g. {string.Concat(words.Skip(1))}{PastOf(first)}";
        return $"'{name}' does not end with a past-tense verb ('{last}'); an event names a fact that happened, e.g. {(words.Count > 1 ? string.Concat(words.Take(words.Count - 1)) : "Order")}{PastOf(last)}";
    }

    /// <summary>True when the word reads as a past tense (<c>Placed</c>, <c>Paid</c>).</summary>
    public static bool IsPast(string word) =>
        IrregularPast.Contains(word) || (word.Length > 3 && word.EndsWith("ed", StringComparison.Ordinal) && !FalsePast.Contains(word));

    private static bool LooksImperative(string word) => word is "Get" or "Create" or "Update" or "Delete" or "Place" or "Set" or "Add" or "Remove"
        or "Do" or "Process" or "Handle" or "Send" or "Make" or "Change" or "Cancel" or "Submit" or "Register" or "Ship" or "Pay" or "Start"
        or "Stop" or "Fetch" or "Load" or "Save" or "Request" or "Approve" or "Reject" or "Check" or "Calculate" or "Generate" or "Execute" or "Run";

    private static string PastOf(string verb) => verb switch
    {
        "Pay" => "Paid",
        "Send" => "Sent",
        "Make" => "Made",
        "Get" => "Retrieved",
        "Set" => "Set",
        "Run" => "Run",
        "Ship" => "Shipped",
        "Stop" => "Stopped",
        _ when verb.EndsWith('e') => verb + "d",
        _ => verb + "ed",
    };

    private static List<string> SplitWords(string name)
    {
        var words = new List<string>();
        var start = 0;
        for (var i = 1; i < name.Length; i++)
        {
            if (char.IsAsciiLetterUpper(name[i]) && !char.IsAsciiLetterUpper(name[i - 1]))
            {
                words.Add(name[start..i]);
                start = i;
            }
        }
        words.Add(name[start..]);
        return words;
    }
}
