using CsCheck;
using Factum.Messaging;

namespace Factum.Tests;

/// <summary>The one rebalancing rule both embedded transports use.</summary>
public sealed class GroupCoordinatorTests
{
    private static List<GroupCoordinator.PartitionState> Parts(params string?[] owners) =>
        owners.Select((o, p) => new GroupCoordinator.PartitionState(p, o, 100 + p)).ToList();

    [Fact]
    public void A_lone_member_takes_every_free_partition_and_resumes_where_the_group_committed()
    {
        var d = GroupCoordinator.Assign("a", ["a"], Parts(null, null, "a"), []);
        Assert.Equal([0, 1], d.Take);
        Assert.Equal([(0, 100L), (1, 101L), (2, 102L)], d.Assignment.Owned.Select(o => (o.Partition, o.Offset)));
        Assert.Empty(d.Assignment.Revoke);
        Assert.Equal(1, d.Assignment.Members);
    }

    [Fact]
    public void A_partition_moves_only_after_its_owner_gives_it_up()
    {
        // b joined: partitions 1 and 3 are b's now, but a is still reading them.
        var parts = Parts("a", "a", "a", "a");
        var forB = GroupCoordinator.Assign("b", ["a", "b"], parts, []);
        Assert.Empty(forB.Take); // not while a holds them
        var forA = GroupCoordinator.Assign("a", ["b", "a"], parts, [0, 1, 2, 3]);
        Assert.Equal([1, 3], forA.Assignment.Revoke); // a is told to stop reading them
        Assert.Empty(forA.Release);
        // a stopped reading them: its next heartbeat releases them, and then b takes them.
        forA = GroupCoordinator.Assign("a", ["a", "b"], parts, [0, 2]);
        Assert.Equal([1, 3], forA.Release);
        parts = Parts("a", null, "a", null);
        Assert.Equal([1, 3], GroupCoordinator.Assign("b", ["a", "b"], parts, []).Take);
    }

    [Fact]
    public void An_unknown_member_is_refused()
    {
        Assert.Throws<ArgumentException>(() => GroupCoordinator.Assign("z", ["a"], Parts("a"), []));
    }

    [Fact]
    public void Any_sequence_of_heartbeats_keeps_one_reader_per_partition_and_settles_on_a_fair_spread()
    {
        Gen.Select(Gen.Int[1, 6], Gen.Int[1, 16], Gen.Int[0, 1000].Array[20, 60]).Sample((memberCount, partitionCount, order) =>
        {
            var members = Enumerable.Range(0, memberCount).Select(i => $"m{i}").ToList();
            var owners = new string?[partitionCount];
            var running = members.ToDictionary(m => m, _ => new HashSet<int>());
            void Beat(string m)
            {
                var d = GroupCoordinator.Assign(m, members, owners.Select((o, p) => new GroupCoordinator.PartitionState(p, o, 0)).ToList(), running[m]);
                foreach (var p in d.Take)
                {
                    Assert.Null(owners[p]); // never taken from another member
                    owners[p] = m;
                }
                foreach (var p in d.Release) owners[p] = null;
                // The member reads what it owns and stops what it must revoke (by its next heartbeat).
                running[m] = d.Assignment.Owned.Select(o => o.Partition).ToHashSet();
                // No partition is read by two members.
                var read = running.Values.SelectMany(r => r).ToList();
                Assert.Equal(read.Count, read.Distinct().Count());
            }
            foreach (var i in order) Beat(members[i % memberCount]);
            // Then every member heartbeats twice in turn: the group settles.
            for (var round = 0; round < 2; round++) foreach (var m in members) Beat(m);
            for (var p = 0; p < partitionCount; p++) Assert.Equal(members[p % memberCount], owners[p]);
        });
    }
}
