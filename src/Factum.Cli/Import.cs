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

    /// <summary>The longest line accepted by default: twice the largest event (JSON escapes) plus room for the envelope.</summary>
    public static int DefaultMaxLineBytes(int maxEventSize) => (int)Math.Min(int.MaxValue - 1, (2L * maxEventSize) + (64 * 1024));

    public static async Task<int> RunAsync(IEventStore store, int maxLineBytes, bool allowNonConventionalNames, CancellationToken ct)
    {
        await using var stdin = Console.OpenStandardInput();
        var input = new BoundedLineReader(stdin, maxLineBytes);
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
        while (await input.ReadLineAsync(ct) is { } line)
        {
            lineNo++;
            Task<AppendResult> task;
            EventId? id = null;
            try
            {
                if (line.TooLong) throw new ArgumentException($"the line is longer than {maxLineBytes:N0} bytes (--max-line-bytes); it was skipped without being read into memory");
                if (IsBlank(line.Bytes.Span)) continue;
                var (stream, expected, events) = ParseLine(line.Bytes);
                id = events[0].EventId;
                EventFiles.CheckTypeNames(events, allowNonConventionalNames);
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

    /// <summary>
    /// One import line, from its raw bytes to the append it asks for. Throws <see cref="ArgumentException"/>,
    /// <see cref="FormatException"/> or <see cref="JsonException"/> for bad input, and nothing else (fuzzed).
    /// </summary>
    public static (StreamId Stream, ExpectedVersion Expected, List<EventData> Events) ParseLine(ReadOnlyMemory<byte> line)
    {
        // Checked on the raw bytes: a decoder would silently turn invalid UTF-8 into U+FFFD in ids and payloads, and an
        // escaped lone surrogate in any field would fail later, when the field is read.
        if (JsonText.Check(line.Span) is { } error) throw new ArgumentException($"the line is not valid JSON: {error}");
        using var doc = JsonDocument.Parse(line);
        return EventFiles.FromImportLine(doc.RootElement);
    }

    private static bool IsBlank(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r')) return false;
        }
        return true;
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

/// <summary>
/// Reads newline-separated lines as raw bytes, never holding more than <c>maxLineBytes</c> of one line: the rest of a
/// longer line is read past and dropped, and the line is reported as too long. A hostile or broken input (one 1 GB line)
/// then costs a bounded buffer, not the machine's memory.
/// </summary>
internal sealed class BoundedLineReader(Stream stream, int maxLineBytes)
{
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _start, _end;
    private bool _eof;
    private byte[] _line = new byte[1024];

    /// <summary>A line without its line break; <see cref="TooLong"/> lines carry no bytes.</summary>
    public readonly record struct Line(ReadOnlyMemory<byte> Bytes, bool TooLong);

    public async ValueTask<Line?> ReadLineAsync(CancellationToken ct)
    {
        var length = 0;
        var tooLong = false;
        var any = false;
        while (true)
        {
            if (_start == _end)
            {
                if (_eof) break;
                _start = 0;
                _end = await stream.ReadAsync(_buffer, ct).ConfigureAwait(false);
                if (_end == 0)
                {
                    _eof = true;
                    break;
                }
            }
            any = true;
            var chunk = _buffer.AsSpan(_start, _end - _start);
            var nl = chunk.IndexOf((byte)'\n');
            var take = nl < 0 ? chunk : chunk[..nl];
            if (!tooLong)
            {
                if (length + take.Length > maxLineBytes)
                {
                    tooLong = true;
                }
                else
                {
                    if (length + take.Length > _line.Length) Array.Resize(ref _line, Math.Min(maxLineBytes, Math.Max(_line.Length * 2, length + take.Length)));
                    take.CopyTo(_line.AsSpan(length));
                    length += take.Length;
                }
            }
            _start += take.Length;
            if (nl >= 0)
            {
                _start++;
                return Make(length, tooLong);
            }
        }
        return any ? Make(length, tooLong) : null;
    }

    private Line Make(int length, bool tooLong)
    {
        if (tooLong) return new Line(ReadOnlyMemory<byte>.Empty, true);
        if (length > 0 && _line[length - 1] == (byte)'\r') length--;
        // A copy: the printer may still hold the previous line's task while this buffer is reused.
        return new Line(_line.AsSpan(0, length).ToArray(), false);
    }
}
