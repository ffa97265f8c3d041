namespace Shepherd.Tests.Storage;

using System.Text;
using Microsoft.Data.Sqlite;
using Shepherd.Storage.Sqlite;
using Shepherd.Webhooks;

/// <summary>The SQLite job store: durable enqueue with duplicates refused, leases with a visibility timeout and fencing, results once per event.</summary>
public sealed class SqliteWebhookJobStoreTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-03-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private static readonly string[] Sources = ["twill"];

    private readonly string _directory = Directory.CreateTempSubdirectory("shepherd-jobs-").FullName;
    private SqliteWebhookJobStore _store = null!;

    public async Task InitializeAsync()
    {
        var database = new SqliteDatabase(Path.Combine(_directory, "shepherd.db"));
        await database.MigrateAsync(CancellationToken.None);
        _store = new SqliteWebhookJobStore(database);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private static WebhookEventDraft Draft(string id, string type = "agent.completed", bool skip = false) =>
        new("twill", id, type, Encoding.UTF8.GetBytes($$"""{"id":"{{id}}","type":"{{type}}"}"""), skip, skip ? "skipped" : null);

    private static WebhookAttempt Attempt(WebhookLeasedJob job, string outcome, string? error = null) => new(job.Attempt, T0, 12.5, outcome, 200, error, $"wh-twill-{job.EventId}-{job.Attempt}");

    private static WebhookResult Result(string text) => new() { Model = "m", Text = text, PromptTokens = 3, CompletionTokens = 4, CostUsd = 0.000123m, LatencyMs = 50, RequestId = "r", CompletedAt = T0 };

    [Fact]
    public async Task Enqueue_DuplicatesInTheBatchAndAcrossBatches_StoredOnce()
    {
        var first = await _store.EnqueueAsync([Draft("a"), Draft("b"), Draft("a")], T0, CancellationToken.None);
        var second = await _store.EnqueueAsync([Draft("b"), Draft("c", skip: true)], T0, CancellationToken.None);

        Assert.Equal([true, true, false], first);
        Assert.Equal([false, true], second);
        var stats = Assert.Single(await _store.StatsAsync(T0, CancellationToken.None));
        Assert.Equal(2, stats.Waiting);
        Assert.Equal(1, stats.Skipped);
    }

    [Fact]
    public async Task Lease_VisibilityTimeout_InvisibleWhileLeasedThenLeasedAgainWithTheNextAttempt()
    {
        await _store.EnqueueAsync([Draft("a"), Draft("b")], T0, CancellationToken.None);

        var leased = await _store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), CancellationToken.None);
        var again = await _store.LeaseAsync(Sources, 10, T0.AddSeconds(59), TimeSpan.FromSeconds(60), CancellationToken.None);
        var afterCrash = await _store.LeaseAsync(Sources, 10, T0.AddSeconds(60), TimeSpan.FromSeconds(60), CancellationToken.None);

        Assert.Equal(["a", "b"], leased.Select(j => j.EventId));
        Assert.All(leased, j => Assert.Equal((1, 1), (j.Attempt, j.Try)));
        Assert.Equal("""{"id":"a","type":"agent.completed"}""", Encoding.UTF8.GetString(leased[0].Payload.Span));
        Assert.Empty(again);
        Assert.Equal(["a", "b"], afterCrash.Select(j => j.EventId));
        Assert.All(afterCrash, j => Assert.Equal((2, 2), (j.Attempt, j.Try)));
    }

    [Fact]
    public async Task Lease_OtherSourcesAndLimit_OnlyTheGivenSourcesUpToMax()
    {
        await _store.EnqueueAsync([Draft("a"), Draft("b"), Draft("c"), new WebhookEventDraft("other", "x", "t", "{}"u8.ToArray())], T0, CancellationToken.None);

        var two = await _store.LeaseAsync(Sources, 2, T0, TimeSpan.FromSeconds(60), CancellationToken.None);
        var rest = await _store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), CancellationToken.None);

        Assert.Equal(2, two.Count);
        Assert.Equal(["c"], rest.Select(j => j.EventId));
    }

    [Fact]
    public async Task Complete_StaleAttemptAfterReLease_FencedOutAndFirstResultKept()
    {
        await _store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var stale = (await _store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(10), CancellationToken.None)).Single();
        var current = (await _store.LeaseAsync(Sources, 1, T0.AddSeconds(10), TimeSpan.FromSeconds(10), CancellationToken.None)).Single();

        var currentDone = await _store.CompleteAsync(current, Result("second worker"), Attempt(current, "success"), false, T0.AddSeconds(11), CancellationToken.None);
        var staleDone = await _store.CompleteAsync(stale, Result("first worker, late"), Attempt(stale, "success"), false, T0.AddSeconds(12), CancellationToken.None);
        var staleFail = await _store.FailAsync(stale, Attempt(stale, "retry", "late"), T0.AddSeconds(20), T0.AddSeconds(12), CancellationToken.None);

        Assert.True(currentDone);
        Assert.False(staleDone);
        Assert.False(staleFail);
        var detail = Assert.Single(await _store.FindAsync("a", null, CancellationToken.None));
        Assert.Equal(WebhookJobStatus.Completed, detail.Jobs.Single().Status);
        Assert.Equal("second worker", detail.Result!.Text);
        Assert.Equal(0.000123m, detail.Result.CostUsd);
        Assert.Equal(2, detail.Jobs.Single().History.Count);
    }

    [Fact]
    public async Task Complete_WithDelivery_QueuesOneDeliveryJobCarryingTheResult()
    {
        await _store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var job = (await _store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        await _store.CompleteAsync(job, Result("text"), Attempt(job, "success"), enqueueDelivery: true, T0, CancellationToken.None);
        var delivery = (await _store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        Assert.Equal(WebhookJobKind.Deliver, delivery.Kind);
        Assert.Equal("a", delivery.EventId);
        Assert.Equal("text", delivery.Result!.Text);
        Assert.Equal(1, delivery.Attempt);
    }

    [Fact]
    public async Task Fail_NextAttemptTime_DueOnlyFromThen()
    {
        await _store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var job = (await _store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        await _store.FailAsync(job, Attempt(job, "retry", "503 upstream"), T0.AddSeconds(5), T0, CancellationToken.None);

        Assert.Empty(await _store.LeaseAsync(Sources, 1, T0.AddSeconds(4.999), TimeSpan.FromSeconds(60), CancellationToken.None));
        var retried = (await _store.LeaseAsync(Sources, 1, T0.AddSeconds(5), TimeSpan.FromSeconds(60), CancellationToken.None)).Single();
        Assert.Equal((2, 2), (retried.Attempt, retried.Try));
        var stats = Assert.Single(await _store.StatsAsync(T0.AddSeconds(5), CancellationToken.None));
        Assert.Equal(1, stats.Leased);
    }

    [Fact]
    public async Task Release_AtShutdown_DueAtOnceAndTheTryNotCounted()
    {
        await _store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var job = (await _store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        await _store.ReleaseAsync(job, T0, CancellationToken.None);
        var again = (await _store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        Assert.Equal((2, 1), (again.Attempt, again.Try));
    }

    [Fact]
    public async Task DeadLetter_ReplayOneAndAll_PurgeDead()
    {
        await _store.EnqueueAsync([Draft("a"), Draft("b"), Draft("c")], T0, CancellationToken.None);
        foreach (var job in await _store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), CancellationToken.None))
        {
            await _store.DeadLetterAsync(job, Attempt(job, "dead", "400 bad"), T0, CancellationToken.None);
        }

        Assert.Equal(3, (await _store.ListAsync(new WebhookListQuery(Status: WebhookJobStatus.Dead), CancellationToken.None)).Count);
        Assert.Equal(WebhookReplayOutcome.Replayed, await _store.ReplayAsync("twill", "a", T0.AddMinutes(1), CancellationToken.None));
        Assert.Equal(WebhookReplayOutcome.NothingToReplay, await _store.ReplayAsync("twill", "a", T0.AddMinutes(1), CancellationToken.None));
        Assert.Equal(WebhookReplayOutcome.NotFound, await _store.ReplayAsync("twill", "zzz", T0.AddMinutes(1), CancellationToken.None));
        var replayed = (await _store.LeaseAsync(Sources, 10, T0.AddMinutes(1), TimeSpan.FromSeconds(60), CancellationToken.None)).Single();
        Assert.Equal(("a", 2, 1), (replayed.EventId, replayed.Attempt, replayed.Try));

        Assert.Equal(0, await _store.ReplayDeadAsync("other", T0, CancellationToken.None));
        Assert.Equal(2, await _store.ReplayDeadAsync(null, T0.AddMinutes(1.5), CancellationToken.None));
        foreach (var job in await _store.LeaseAsync(Sources, 10, T0.AddMinutes(1.5), TimeSpan.FromSeconds(60), CancellationToken.None))
        {
            await _store.DeadLetterAsync(job, Attempt(job, "dead", "400 bad"), T0, CancellationToken.None);
        }

        Assert.Equal(2, await _store.PurgeDeadAsync("twill", CancellationToken.None));
        Assert.Equal(["a"], (await _store.ListAsync(new WebhookListQuery(), CancellationToken.None)).Select(e => e.EventId));
        Assert.Empty(await _store.FindAsync("b", null, CancellationToken.None));
    }

    [Fact]
    public async Task List_PagesNewestFirstAndFiltersBySourceAndStatus()
    {
        await _store.EnqueueAsync([Draft("a"), Draft("b"), Draft("c"), Draft("d", skip: true), new WebhookEventDraft("other", "x", "t", "{}"u8.ToArray())], T0, CancellationToken.None);

        var page = await _store.ListAsync(new WebhookListQuery(Source: "twill", Limit: 2), CancellationToken.None);
        var next = await _store.ListAsync(new WebhookListQuery(Source: "twill", Before: page[^1].Sequence, Limit: 10), CancellationToken.None);
        var skipped = await _store.ListAsync(new WebhookListQuery(Status: WebhookJobStatus.Skipped), CancellationToken.None);

        Assert.Equal(["d", "c"], page.Select(e => e.EventId));
        Assert.Equal(["b", "a"], next.Select(e => e.EventId));
        Assert.Equal(["d"], skipped.Select(e => e.EventId));
    }

    [Fact]
    public async Task Stats_ExpiredLeaseCountsAsWaitingWithTheOldestAge()
    {
        await _store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        await _store.EnqueueAsync([Draft("b")], T0.AddSeconds(30), CancellationToken.None);
        await _store.LeaseAsync(Sources, 1, T0.AddSeconds(30), TimeSpan.FromSeconds(10), CancellationToken.None);

        var during = Assert.Single(await _store.StatsAsync(T0.AddSeconds(35), CancellationToken.None));
        var after = Assert.Single(await _store.StatsAsync(T0.AddSeconds(45), CancellationToken.None));

        Assert.Equal((1L, 1L, T0.AddSeconds(30)), (during.Waiting, during.Leased, during.OldestWaitingSince!.Value));
        Assert.Equal((2L, 0L), (after.Waiting, after.Leased));
    }

    [Fact]
    public async Task GroupWriter_OneOperationThrows_OnlyItIsRolledBackTheOthersCommitTogether()
    {
        var database = new SqliteDatabase(Path.Combine(_directory, "writer.db"));
        await database.MigrateAsync(CancellationToken.None);
        await using var writer = new SqliteGroupWriter(database);
        Task<int> Insert(string id, bool fail) => writer.WriteAsync(async (connection, transaction) =>
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "INSERT INTO webhook_events (source, event_id, event_type, payload, received_at) VALUES ('s', $id, 't', x'7b7d', 0)";
            command.Parameters.AddWithValue("$id", id);
            await command.ExecuteNonQueryAsync();
            return fail ? throw new InvalidOperationException("boom") : 1;
        });

        var tasks = Enumerable.Range(0, 200).Select(i => Insert($"e{i}", fail: i == 100)).ToArray();
        await Assert.ThrowsAsync<InvalidOperationException>(() => tasks[100]);
        await Task.WhenAll(tasks.Where((_, i) => i != 100));

        await using var connection = await database.OpenAsync(CancellationToken.None);
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*), SUM(event_id = 'e100') FROM webhook_events";
        await using var reader = await count.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal(199, reader.GetInt64(0));
        Assert.Equal(0, reader.GetInt64(1));
        Assert.True(writer.Commits < 200, $"{writer.Commits} commits for 200 writes: no grouping");
    }
}
