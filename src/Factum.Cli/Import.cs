using System.Text;
using System.Text.Json;

namespace Factum.Cli;

/// <summary>
/// The bulk-ingest path. Lines are appended as fast as they arrive (the store group-commits them) while results are
/// printed in input order, each only after its append is durable: a printed line is an acknowledgement.
/// </summary>
internal static class Import
{
    private const int MaxInFlight = 16_384;

    public static async Task<int> RunAsync(IEventStore store, CancellationToken ct)
    {
        using var input = new StreamReader(Console.OpenStandardInput(), Encoding.UTF8, false, 1 << 16);
        await using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16) { AutoFlush = false };
        var output = new Output(stdout, json: true);
        var pending = System.Threading.Channels.Channel.CreateBounded<(long Line, Task<AppendResult> Task, EventId? Id)>(
            new System.Threading.Channels.BoundedChannelOptions(MaxInFlight) { SingleReader = true, SingleWriter = true });
        var firstError = 0;

        // The printer awaits appends in input order and prints each once durable; it flushes whenever it has caught up,
        // so acknowledgements reach the reader promptly even when input trickles in.
        var printer = Task.Run(async () =>
        {
            var reader = pending.Reader;
            while (await reader.WaitToReadAsync(CancellationToken.None))
            {
                while (reader.TryRead(out var item))
                {
                    try { await item.Task; } catch { /* reported below */ }
                    Print(output, item, ref firstError);
                }
                await stdout.FlushAsync(CancellationToken.None);
            }
        }, CancellationToken.None);

        long lineNo = 0;
        while (await input.ReadLineAsync(ct) is { } text)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            Task<AppendResult> task;
            EventId? id = null;
            try
            {
                using var doc = JsonDocument.Parse(text);
                var (stream, expected, events) = EventFiles.FromImportLine(doc.RootElement);
                id = events[0].EventId;
                task = store.AppendAsync(stream, expected, events, ct);
            }
            catch (Exception ex) when (ex is JsonException or ArgumentException or FormatException or InvalidOperationException)
            {
                task = Task.FromException<AppendResult>(ex is JsonException ? new ArgumentException($"not valid JSON: {ex.Message}", ex) : ex);
            }
            await pending.Writer.WriteAsync((lineNo, task, id), ct);
        }
        pending.Writer.Complete();
        await printer;
        await stdout.FlushAsync(ct);
        return firstError;
    }

    private static void Print(Output output, (long Line, Task<AppendResult> Task, EventId? Id) item, ref int firstError)
    {
        if (item.Task.IsCompletedSuccessfully)
        {
            var r = item.Task.Result;
            output.JsonLine(w =>
            {
                w.WriteNumber("line", item.Line);
                w.WriteString("eventId", item.Id!.Value.ToString());
                w.WriteString("streamId", r.StreamId.Value);
                w.WriteNumber("streamVersion", r.NextExpectedVersion?.Value ?? -1);
                w.WriteNumber("position", r.LastPosition.Value);
                if (r.FirstPosition != r.LastPosition) w.WriteNumber("firstPosition", r.FirstPosition.Value);
                if (!r.Written) w.WriteBoolean("written", false);
            });
            return;
        }
        var ex = item.Task.Exception?.GetBaseException() ?? new OperationCanceledException();
        var (code, message) = ExitCodes.From(ex);
        if (firstError == 0) firstError = code;
        output.JsonLine(w =>
        {
            w.WriteNumber("line", item.Line);
            w.WriteString("error", message);
            w.WriteNumber("code", code);
        });
    }
}
