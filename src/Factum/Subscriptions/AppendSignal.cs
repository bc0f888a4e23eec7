namespace Factum.Subscriptions;

/// <summary>
/// Wakes waiters when events are appended, without polling in a tight loop. A store calls <see cref="Notify"/> after each
/// commit; subscribers call <see cref="WaitAsync"/> with a timeout that bounds how late they notice appends made elsewhere.
/// </summary>
public sealed class AppendSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Wakes every current waiter.</summary>
    public void Notify() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// Completes at once when <paramref name="alreadyHappened"/> is true, else at the next <see cref="Notify"/> or after
    /// <paramref name="timeout"/>. The wake-up is armed before the check, so a notify between the two is never lost.
    /// </summary>
    public async Task WaitAsync(Func<CancellationToken, Task<bool>> alreadyHappened, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(alreadyHappened);
        var wait = Volatile.Read(ref _next).Task;
        if (await alreadyHappened(cancellationToken).ConfigureAwait(false)) return;
        try
        {
            await wait.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A timeout is an ordinary wake-up: the caller re-reads and catches what other processes appended.
        }
    }
}

/// <summary>A store that can wake subscribers when it commits appends.</summary>
public interface IAppendNotifier
{
    /// <summary>
    /// Completes soon after the high-water mark (<see cref="IEventReader.GetHeadPositionAsync"/>) passes
    /// <paramref name="after"/>, or after <paramref name="timeout"/>.
    /// Appends made through this instance wake waiters at once; appends by other processes are noticed within the
    /// store's own polling interval (or at the timeout).
    /// </summary>
    Task WaitForAppendAsync(GlobalPosition after, TimeSpan timeout, CancellationToken cancellationToken = default);
}
