using Factum.Design;

namespace Factum.Design.Tests;

public sealed class NamingAndMergeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("factum-merge-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData("AssessClaim", "ClaimAssessed", "a command name")]
    [InlineData("SendInvoice", "InvoiceSent", "a command name")]
    [InlineData("PayInvoice", "InvoicePaid", "a command name")]
    [InlineData("ShipOrder", "OrderShipped", "a command name")]
    [InlineData("CancelOrder", "OrderCancelled", "a command name")]
    [InlineData("ApproveLoan", "LoanApproved", "a command name")]
    [InlineData("PlaceOrder", "OrderPlaced", "a command name")]
    [InlineData("VerifyEmail", "EmailVerified", "a command name")]
    [InlineData("SubmitForm", "FormSubmitted", "a command name")]
    [InlineData("AdjudicateClaim", "ClaimAdjudicated", "a command name")]
    [InlineData("OrderCreate", "OrderCreated", "a noun + verb")]
    public void An_imperative_event_name_is_called_a_command_name_and_gets_noun_plus_past_participle(string name, string suggestion, string reading)
    {
        var findings = LintRules.Lint(CatalogLoader.Parse($"events:\n  - {{name: {name}, owner: t, versions: [{{version: 1, schema: {{type: object}}}}]}}\n"));
        var finding = Assert.Single(findings, f => f.Rule == "naming/event-past-tense");
        Assert.Contains($"reads as {reading}", finding.Message);
        Assert.EndsWith($"e.g. {suggestion}", finding.Message);
        Assert.DoesNotContain(name + "ed", finding.Message); // the old advice: AssessClaimed
    }

    [Theory]
    [InlineData("Send", "Sent")]
    [InlineData("Pay", "Paid")]
    [InlineData("Ship", "Shipped")]
    [InlineData("Cancel", "Cancelled")]
    [InlineData("Approve", "Approved")]
    [InlineData("Apply", "Applied")]
    [InlineData("Deploy", "Deployed")]
    [InlineData("Open", "Opened")]
    [InlineData("Fix", "Fixed")]
    [InlineData("Write", "Written")]
    [InlineData("Assess", "Assessed")]
    [InlineData("Stop", "Stopped")]
    public void Past_participles_handle_irregular_verbs_and_spelling_rules(string verb, string participle) =>
        Assert.Equal(participle, EventNames.PastParticiple(verb));

    [Fact]
    public void The_same_version_defined_twice_with_different_schemas_is_an_error_naming_both_files()
    {
        File.WriteAllText(Path.Combine(_dir, "a.yaml"), "events:\n  - name: OrderPlaced\n    owner: t\n    versions:\n      - version: 1\n        schema: {type: object, properties: {orderId: {type: string}}}\n");
        File.WriteAllText(Path.Combine(_dir, "b.yaml"), "events:\n  - name: OrderPlaced\n    versions:\n      - version: 1\n        schema: {type: object, properties: {orderId: {type: integer}}}\n");
        var ex = Assert.Throws<CatalogFormatException>(() => CatalogLoader.Load([_dir]));
        Assert.Contains("message 'OrderPlaced' v1 is defined twice with different schemas", ex.Message);
        Assert.Contains(Path.Combine(_dir, "a.yaml") + ":5", ex.Message);
        Assert.StartsWith(Path.Combine(_dir, "b.yaml") + ":4:", ex.Message);

        // The same schema twice, or a version only one file has, still merges.
        File.WriteAllText(Path.Combine(_dir, "b.yaml"), "events:\n  - name: OrderPlaced\n    versions:\n      - version: 1\n        schema: {type: object, properties: {orderId: {type: string}}}\n      - version: 2\n        schema: {type: object}\n");
        Assert.Equal([1, 2], CatalogLoader.Load([_dir]).Message("OrderPlaced")!.Versions.Select(v => v.Version));
    }

    [Fact]
    public void Two_documents_of_one_file_defining_a_version_differently_are_an_error_too()
    {
        var ex = Assert.Throws<CatalogFormatException>(() => CatalogLoader.Parse(
            "events: [{name: A, versions: [{version: 1, schema: {type: object}}]}]\n---\nevents: [{name: A, versions: [{version: 1, schema: {type: string}}]}]\n", "one.yaml"));
        Assert.Contains("v1 is defined twice", ex.Message);
        Assert.Contains("one.yaml:1", ex.Message);
        Assert.Contains("one.yaml:3", ex.Message);
    }
}
