namespace Factum.Messaging;

/// <summary>
/// The one rebalancing rule of stream consumer groups, for transports that do not manage groups themselves (the embedded
/// and in-memory transports; a broker with native groups, such as a JetStream consumer, decides on its own). The live
/// members, sorted by id, take partition <c>p</c> in turn (<c>p % members</c>), so each holds its fair share. It is
/// cooperative: a member takes a partition only once its previous owner has given it up, and an owner whose partition
/// moves is told to revoke it (finish its batch, commit, release) before anyone else reads it, so no partition is ever
/// read by two members at once.
/// </summary>
public static class GroupCoordinator
{
    /// <summary>A partition as the transport holds it.</summary>
    /// <param name="Partition">The partition number.</param>
    /// <param name="Owner">The member holding it, or null.</param>
    /// <param name="Resume">Where its owner resumes: the group's committed offset, or the log's start if that is later.</param>
    public readonly record struct PartitionState(int Partition, string? Owner, long Resume);

    /// <summary>What the transport must do for one member's heartbeat, and what it answers.</summary>
    /// <param name="Assignment">The answer: the partitions the member owns (with where to resume) and those it must revoke.</param>
    /// <param name="Take">Partitions to record as owned by the member (they were free).</param>
    /// <param name="Release">Partitions to record as free (they move, and the member is not reading them).</param>
    public sealed record Decision(GroupAssignment Assignment, IReadOnlyList<int> Take, IReadOnlyList<int> Release);

    /// <summary>Decides one member's partitions.</summary>
    /// <param name="member">The member heartbeating.</param>
    /// <param name="liveMembers">Every live member of the group, this one included (any order).</param>
    /// <param name="partitions">Every partition of the topic with its owner.</param>
    /// <param name="running">Partitions the member is still reading (a revoked one stays its own until it stops).</param>
    public static Decision Assign(string member, IReadOnlyCollection<string> liveMembers, IReadOnlyList<PartitionState> partitions, IReadOnlyCollection<int> running)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(member);
        ArgumentNullException.ThrowIfNull(liveMembers);
        ArgumentNullException.ThrowIfNull(partitions);
        ArgumentNullException.ThrowIfNull(running);
        var members = liveMembers.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var me = members.IndexOf(member);
        if (me < 0) throw new ArgumentException($"Member '{member}' is not among the live members.", nameof(liveMembers));
        var owned = new List<PartitionOffset>();
        var revoke = new List<int>();
        var take = new List<int>();
        var release = new List<int>();
        foreach (var p in partitions)
        {
            var mine = p.Partition % members.Count == me;
            if (mine && (p.Owner is null || p.Owner == member))
            {
                if (p.Owner is null) take.Add(p.Partition);
                owned.Add(new PartitionOffset(p.Partition, p.Resume));
            }
            else if (!mine && p.Owner == member)
            {
                if (running.Contains(p.Partition)) revoke.Add(p.Partition);
                else release.Add(p.Partition);
            }
        }
        return new Decision(new GroupAssignment(owned, revoke, members.Count), take, release);
    }
}
