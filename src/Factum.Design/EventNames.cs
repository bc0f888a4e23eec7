namespace Factum.Design;

/// <summary>
/// Suggests the event name for a name that is not a past-tense fact: verb + noun (<c>AssessClaim</c>, a command's name)
/// becomes noun + past participle (<c>ClaimAssessed</c>), and noun + verb (<c>OrderCreate</c>) becomes
/// <c>OrderCreated</c>. The core's <see cref="EventNamingConvention"/> decides whether a name is past tense; this class
/// only words the fix.
/// </summary>
public static class EventNames
{
    // Verbs that commonly close a noun + verb name (OrderCreate): when the last word is one of them, it is the action.
    private static readonly HashSet<string> TrailingVerbs = new(StringComparer.Ordinal)
    {
        "Create", "Update", "Delete", "Remove", "Add", "Change", "Cancel", "Submit", "Register", "Approve", "Reject", "Ship", "Pay",
        "Send", "Start", "Stop", "Complete", "Close", "Open", "Assign", "Book", "Confirm", "Reserve", "Release", "Refund", "Capture",
        "Place", "Process", "Save", "Set", "Reset", "Publish", "Archive", "Restore", "Verify", "Validate", "Expire", "Renew", "Assess",
        "Deliver", "Dispatch", "Schedule", "Transfer", "Withdraw", "Deposit", "Charge", "Issue", "Sign", "Move", "Pause", "Resume",
    };

    // Past participles that do not follow the -ed rules.
    private static readonly Dictionary<string, string> Irregular = new(StringComparer.Ordinal)
    {
        ["Be"] = "Been",
        ["Begin"] = "Begun",
        ["Bid"] = "Bid",
        ["Bind"] = "Bound",
        ["Break"] = "Broken",
        ["Bring"] = "Brought",
        ["Broadcast"] = "Broadcast",
        ["Build"] = "Built",
        ["Buy"] = "Bought",
        ["Catch"] = "Caught",
        ["Choose"] = "Chosen",
        ["Come"] = "Come",
        ["Cut"] = "Cut",
        ["Deal"] = "Dealt",
        ["Do"] = "Done",
        ["Draw"] = "Drawn",
        ["Drive"] = "Driven",
        ["Eat"] = "Eaten",
        ["Fall"] = "Fallen",
        ["Feed"] = "Fed",
        ["Feel"] = "Felt",
        ["Find"] = "Found",
        ["Forecast"] = "Forecast",
        ["Forget"] = "Forgotten",
        ["Forgive"] = "Forgiven",
        ["Freeze"] = "Frozen",
        ["Get"] = "Retrieved",
        ["Give"] = "Given",
        ["Go"] = "Gone",
        ["Grow"] = "Grown",
        ["Hang"] = "Hung",
        ["Have"] = "Had",
        ["Hide"] = "Hidden",
        ["Hit"] = "Hit",
        ["Hold"] = "Held",
        ["Keep"] = "Kept",
        ["Know"] = "Known",
        ["Lay"] = "Laid",
        ["Lead"] = "Led",
        ["Leave"] = "Left",
        ["Lend"] = "Lent",
        ["Lose"] = "Lost",
        ["Make"] = "Made",
        ["Meet"] = "Met",
        ["Overpay"] = "Overpaid",
        ["Override"] = "Overridden",
        ["Pay"] = "Paid",
        ["Prepay"] = "Prepaid",
        ["Put"] = "Put",
        ["Quit"] = "Quit",
        ["Read"] = "Read",
        ["Rebuild"] = "Rebuilt",
        ["Repay"] = "Repaid",
        ["Reset"] = "Reset",
        ["Resend"] = "Resent",
        ["Rewrite"] = "Rewritten",
        ["Ride"] = "Ridden",
        ["Rise"] = "Risen",
        ["Run"] = "Run",
        ["Say"] = "Said",
        ["See"] = "Seen",
        ["Seek"] = "Sought",
        ["Sell"] = "Sold",
        ["Send"] = "Sent",
        ["Set"] = "Set",
        ["Shake"] = "Shaken",
        ["Show"] = "Shown",
        ["Shut"] = "Shut",
        ["Speak"] = "Spoken",
        ["Spend"] = "Spent",
        ["Split"] = "Split",
        ["Steal"] = "Stolen",
        ["Strike"] = "Struck",
        ["Swear"] = "Sworn",
        ["Take"] = "Taken",
        ["Teach"] = "Taught",
        ["Tell"] = "Told",
        ["Throw"] = "Thrown",
        ["Understand"] = "Understood",
        ["Undo"] = "Undone",
        ["Uphold"] = "Upheld",
        ["Win"] = "Won",
        ["Withdraw"] = "Withdrawn",
        ["Withhold"] = "Withheld",
        ["Write"] = "Written",
    };

    // Verbs of more than one syllable that double their last consonant (stress on the last syllable, or British -ll).
    private static readonly HashSet<string> Doubling = new(StringComparer.Ordinal)
    {
        "Admit", "Cancel", "Commit", "Compel", "Control", "Equip", "Expel", "Format", "Label", "Model", "Occur", "Omit", "Patrol",
        "Permit", "Prefer", "Refer", "Regret", "Signal", "Submit", "Total", "Transfer", "Travel", "Unship", "Fuel", "Level", "Refuel",
        "Remit", "Transmit", "Acquit", "Rebut", "Defer", "Confer", "Embed",
    };

    /// <summary>
    /// The past-tense event name for <paramref name="name"/> and how the name reads, or null when it already ends with a
    /// past tense. <c>AssessClaim</c> → (<c>ClaimAssessed</c>, "a command name (verb + noun)").
    /// </summary>
    public static (string Suggestion, string Reading)? Suggest(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var words = LintRules.SplitWords(name);
        if (words.Count == 0 || EventNamingConvention.IsPast(words[^1])) return null;
        if (words.Count == 1) return IsVerb(words[0]) ? (PastParticiple(words[0]), "a verb, not a fact") : null;
        var rest = string.Concat(words.Take(words.Count - 1));
        if (KindNouns.Contains(words[^1]))
            return ($"{rest}Created or {rest}Cancelled — whatever happened", "the kind of message, not the fact");
        if (TrailingVerbs.Contains(words[^1]) && !IsVerb(words[0]))
            return (rest + PastParticiple(words[^1]), "a noun + verb in the present tense");
        // Verb + noun is how commands are named (AssessClaim, PlaceOrder): the fact is the noun with the verb's participle.
        // An unknown first word counts as a verb unless the name reads as two nouns (ClaimAssessment).
        if (IsVerb(words[0]) || (!HasNounSuffix(words[0]) && !HasNounSuffix(words[^1])))
            return (string.Concat(words.Skip(1)) + PastParticiple(words[0]), "a command name (verb + noun)");
        return null;
    }

    private static readonly HashSet<string> KindNouns = new(StringComparer.Ordinal) { "Event", "Message", "Command", "Notification", "Data", "Info", "Record", "Payload" };

    private static readonly HashSet<string> MoreVerbs = new(StringComparer.Ordinal)
    {
        "Accept", "Activate", "Adjust", "Apply", "Calculate", "Check", "Collect", "Deactivate", "Decline", "Downgrade", "Enroll", "Evaluate",
        "Export", "Grant", "Import", "Invite", "Join", "Link", "Lock", "Mark", "Notify", "Pack", "Pick", "Post", "Print", "Quote", "Receive",
        "Redeem", "Refuse", "Report", "Request", "Return", "Review", "Revoke", "Settle", "Suspend", "Terminate", "Track", "Unlock",
        "Upgrade", "Upload", "Void", "Waive", "Plan", "Drop", "Scan", "Tag", "Log", "Map", "Flag", "Stop", "Ship", "Approve",
    };

    private static bool IsVerb(string word) => TrailingVerbs.Contains(word) || Irregular.ContainsKey(word) || Doubling.Contains(word) || MoreVerbs.Contains(word);

    private static readonly string[] NounSuffixes = ["ment", "tion", "sion", "ness", "ity", "ance", "ence", "ship", "ing", "er", "or", "ist", "age", "ure"];

    private static bool HasNounSuffix(string word) =>
        NounSuffixes.Any(s => word.Length > s.Length + 1 && word.EndsWith(s, StringComparison.OrdinalIgnoreCase));

    /// <summary>The past participle of a verb written in PascalCase: Send → Sent, Ship → Shipped, Cancel → Cancelled, Apply → Applied.</summary>
    public static string PastParticiple(string verb)
    {
        ArgumentNullException.ThrowIfNull(verb);
        if (verb.Length == 0) return verb;
        if (Irregular.TryGetValue(verb, out var irregular)) return irregular;
        if (verb.EndsWith('e')) return verb + "d";
        var lower = verb.ToLowerInvariant();
        if (lower.Length >= 2 && lower[^1] == 'y' && !IsVowel(lower[^2])) return verb[..^1] + "ied";
        if (Doubling.Contains(verb) || (Syllables(lower) == 1 && EndsConsonantVowelConsonant(lower))) return verb + verb[^1] + "ed";
        return verb + "ed";
    }

    private static bool IsVowel(char c) => c is 'a' or 'e' or 'i' or 'o' or 'u';

    private static int Syllables(string lower)
    {
        var count = 0;
        for (var i = 0; i < lower.Length; i++)
            if ((IsVowel(lower[i]) || (lower[i] == 'y' && i > 0)) && (i == 0 || !(IsVowel(lower[i - 1]) || lower[i - 1] == 'y'))) count++;
        return count;
    }

    // Ship, Stop, Plan: a single vowel between two consonants at the end, the last not w, x or y.
    private static bool EndsConsonantVowelConsonant(string lower) =>
        lower.Length >= 3 && !IsVowel(lower[^1]) && lower[^1] is not ('w' or 'x' or 'y') && IsVowel(lower[^2]) && !IsVowel(lower[^3]);
}
