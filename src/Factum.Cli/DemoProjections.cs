using Factum.Projections;

namespace Factum.Cli;

/// <summary>The demo domain's read models.</summary>
internal static class DemoProjections
{
    public sealed record CustomerOrders(string CustomerId, int Orders = 0, decimal Total = 0);

    private sealed record DayRevenue(string Day, decimal Revenue, int Payments);

    /// <summary>Orders by customer: many OrderPlaced events (one per order stream) into one view per customer.</summary>
    public static IProjection OrdersByCustomer(EventTypeRegistry registry) =>
        new DocumentProjection<CustomerOrders>("orders-by-customer", 1, registry, key => new CustomerOrders(key))
            .On<OrderPlaced>(e => e.CustomerId, (v, e) => v with { Orders = v.Orders + 1, Total = v.Total + e.Total });

    /// <summary>
    /// Revenue per day: a low-level projection that adds each captured payment to its day. It is deliberately not
    /// idempotent by itself — its exactly-once effect rests on the checkpoint sharing the read model's transaction.
    /// </summary>
    private sealed class RevenuePerDay : IProjection
    {
        public string Name => "revenue-per-day";

        public int Version => 1;

        public EventFilter Filter => EventFilter.ForEventTypes("PaymentCaptured");

        public async ValueTask ApplyAsync(RecordedEvent e, IProjectionContext context, CancellationToken cancellationToken)
        {
            var amount = System.Text.Json.JsonDocument.Parse(e.Payload).RootElement.GetProperty("amount").GetDecimal();
            var day = e.Timestamp.UtcDateTime.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
            var current = await context.GetAsync<DayRevenue>(day, cancellationToken) ?? new DayRevenue(day, 0, 0);
            context.Put(day, current with { Revenue = current.Revenue + amount, Payments = current.Payments + 1 });
        }
    }

    public static IReadOnlyList<IProjection> All(EventTypeRegistry registry) => [OrdersByCustomer(registry), new RevenuePerDay()];

    public static EventTypeRegistry Registry() => new EventTypeRegistry().RegisterAssembly(typeof(Demo).Assembly);

    /// <summary>
    /// <c>projections rebuild|run NAME</c> for the projections the CLI defines: optionally reset, then catch up with progress
    /// on stderr (and with <paramref name="follow"/>, keep it live until stopped), then print the status. One runner of
    /// a projection version runs across the processes sharing the store: started beside another, it stands by.
    /// </summary>
    public static async Task<int> RunFromCliAsync(IProjectionEngine models, Factum.Coordination.ILeaseStore leases, Output output, string name, bool fromScratch,
        Factum.Subscriptions.FailureAction onFailure, TimeSpan lease, bool follow, CancellationToken ct)
    {
        var known = All(Registry());
        var projection = known.FirstOrDefault(p => p.Name == name)
            ?? throw new ArgumentException($"'{name}' is not a projection the factum CLI defines ({string.Join(", ", known.Select(p => p.Name))}); rebuild application projections by bumping their version in the application, or use 'projections reset'.");
        if (fromScratch && (await models.ListAsync(ct)).Any(p => p.Name == name)) await models.ResetAsync(name, ct);
        var leaseOptions = new Factum.Coordination.LeaseOptions { Duration = lease };
        var leaseName = ProjectionEngine.LeaseName(projection.Name, projection.Version);
        var saidStandingBy = false;
        var ok = await CatchUpAsync(models, projection, async (pos, head) =>
        {
            Console.Error.WriteLine($"  {name}: position {pos:N0} of {head:N0}");
            // Say so when another process runs it: this one's progress is then that process's.
            var holder = (await leases.ListAsync(ct)).FirstOrDefault(l => l.Name == leaseName)?.Owner;
            var other = holder is not null && !holder.StartsWith(leaseOptions.Owner + "/", StringComparison.Ordinal);
            if (other && !saidStandingBy) Console.Error.WriteLine($"  {name}: standing by: v{projection.Version} runs in another process ({holder}); this one takes over within {Durations.Format(lease)} of its end");
            saidStandingBy = other;
        }, onFailure, leaseOptions, follow, ct);
        ProjectionOutput.Print(output, (await models.ListAsync(CancellationToken.None)).Where(p => p.Name == name).ToList());
        return ok ? ExitCodes.Success : ExitCodes.Failure;
    }

    /// <summary>
    /// Runs a projection until it has caught up with the head (or, with <paramref name="follow"/>, until cancelled),
    /// reporting progress about once a second; returns false if it faulted.
    /// </summary>
    public static async Task<bool> CatchUpAsync(IProjectionEngine models, IProjection projection, Func<long, long, Task>? progress, Factum.Subscriptions.FailureAction onFailure,
        Factum.Coordination.LeaseOptions? lease, bool follow, CancellationToken ct)
    {
        await using var runner = await models.StartAsync(projection, new ProjectionOptions
        {
            LiveWaitTimeout = TimeSpan.FromMilliseconds(50),
            OnFailure = onFailure,
            Retry = new Factum.Subscriptions.RetryPolicy { MaxAttempts = 2, InitialDelay = TimeSpan.FromMilliseconds(10) },
            Lease = lease ?? new Factum.Coordination.LeaseOptions(),
        }, ct);
        var lastReport = DateTime.MinValue;
        long reported = -1;
        try
        {
            while (true)
            {
                var info = (await models.ListAsync(ct)).Single(p => p.Name == projection.Name && p.Version == projection.Version);
                if (info.State == "Faulted") return false;
                var caughtUp = info.Lag == 0 && info.Active;
                if (DateTime.UtcNow - lastReport > TimeSpan.FromSeconds(1) && (!follow || info.Position != reported) || (caughtUp && !follow))
                {
                    if (progress is not null) await progress(info.Position, info.Head);
                    (lastReport, reported) = (DateTime.UtcNow, info.Position);
                }
                if (caughtUp && !follow) return true;
                await Task.Delay(follow ? 200 : 20, ct);
            }
        }
        catch (OperationCanceledException) when (follow && ct.IsCancellationRequested)
        {
            return true; // Ctrl+C: what was applied is committed
        }
    }
}
