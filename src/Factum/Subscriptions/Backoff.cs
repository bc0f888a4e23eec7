namespace Factum.Subscriptions;

/// <summary>
/// The one delay rule of every retry in Factum (subscriptions, projections, the message bus): exponential from an
/// initial delay, capped, with a random spread so that many failing consumers do not retry in step.
/// </summary>
internal static class Backoff
{
    /// <summary>The delay before retry number <paramref name="retry"/> (1-based): initial × 2^(retry−1), at most <paramref name="max"/>, spread by ±<paramref name="jitter"/>.</summary>
    public static TimeSpan Delay(int retry, TimeSpan initial, TimeSpan max, double jitter, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var ms = Math.Min(max.TotalMilliseconds, initial.TotalMilliseconds * Math.Pow(2, Math.Max(0, retry - 1)));
        var spread = 1 + (((random.NextDouble() * 2) - 1) * jitter);
        // Clamped to what a TimeSpan holds, so an extreme MaxDelay or Jitter cannot overflow.
        return TimeSpan.FromMilliseconds(Math.Clamp(ms * spread, 0, TimeSpan.MaxValue.TotalMilliseconds - 1));
    }
}
