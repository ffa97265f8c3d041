namespace Shepherd.Tests.Storage;

using System.Text;
using Shepherd.Webhooks;

/// <summary>
/// What every webhook job store promises, whatever the database: durable enqueue with duplicates refused, leases with
/// a visibility timeout and fencing, results once per event, dead letters, replay, purge, statistics — and, with
/// several instances on one database, disjoint leases and takeover of a lease that ran out. One concrete class per
/// database (SQLite, PostgreSQL) runs these tests.
/// </summary>
public abstract class WebhookJobStoreContractTests : IAsyncLifetime
{
    protected static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-03-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    protected static readonly string[] Sources = ["twill"];

    private readonly List<IWebhookJobStore> _opened = [];

    /// <summary>The store under test (one instance).</summary>
    protected IWebhookJobStore Store { get; private set; } = null!;

    /// <summary>The same store's reads.</summary>
    protected IWebhookEventQuery Query => (IWebhookEventQuery)Store;

    /// <summary>Creates a fresh, empty, migrated database.</summary>
    protected abstract Task CreateDatabaseAsync();

    /// <summary>A new store instance on the database (as another gateway instance would have).</summary>
    protected abstract IWebhookJobStore OpenStore();

    protected abstract Task DestroyDatabaseAsync();

    public async Task InitializeAsync()
    {
        await CreateDatabaseAsync();
        Store = Open();
    }

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            if (store is IAsyncDisposable disposable)
            {
                await disposable.DisposeAsync();
            }
        }

        await DestroyDatabaseAsync();
    }

    /// <summary>Another instance of the store on the same database, disposed with the test.</summary>
    protected IWebhookJobStore Open()
    {
        var store = OpenStore();
        _opened.Add(store);
        return store;
    }

    protected static WebhookEventDraft Draft(string id, string type = "agent.completed", bool skip = false) =>
        new("twill", id, type, Encoding.UTF8.GetBytes($$"""{"id":"{{id}}","type":"{{type}}"}"""), skip, skip ? "skipped" : null);

    protected static WebhookAttempt Attempt(WebhookLeasedJob job, string outcome, string? error = null) => new(job.Attempt, T0, 12.5, outcome, 200, error, $"wh-twill-{job.EventId}-{job.Attempt}");

    protected static WebhookResult Result(string text) => new() { Model = "m", Text = text, PromptTokens = 3, CompletionTokens = 4, CostUsd = 0.000123m, LatencyMs = 50, RequestId = "r", CompletedAt = T0 };

    [Fact]
    public async Task Enqueue_DuplicatesInTheBatchAndAcrossBatches_StoredOnce()
    {
        var first = await Store.EnqueueAsync([Draft("a"), Draft("b"), Draft("a")], T0, CancellationToken.None);
        var second = await Store.EnqueueAsync([Draft("b"), Draft("c", skip: true)], T0, CancellationToken.None);

        Assert.Equal([true, true, false], first);
        Assert.Equal([false, true], second);
        var stats = Assert.Single(await Query.StatsAsync(T0, CancellationToken.None));
        Assert.Equal(2, stats.Waiting);
        Assert.Equal(1, stats.Skipped);
    }

    [Fact]
    public async Task Lease_VisibilityTimeout_InvisibleWhileLeasedThenLeasedAgainWithTheNextAttempt()
    {
        await Store.EnqueueAsync([Draft("a"), Draft("b")], T0, CancellationToken.None);

        var leased = await Store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), CancellationToken.None);
        var again = await Store.LeaseAsync(Sources, 10, T0.AddSeconds(59), TimeSpan.FromSeconds(60), CancellationToken.None);
        var afterCrash = await Store.LeaseAsync(Sources, 10, T0.AddSeconds(60), TimeSpan.FromSeconds(60), CancellationToken.None);

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
        await Store.EnqueueAsync([Draft("a"), Draft("b"), Draft("c"), new WebhookEventDraft("other", "x", "t", "{}"u8.ToArray())], T0, CancellationToken.None);

        var two = await Store.LeaseAsync(Sources, 2, T0, TimeSpan.FromSeconds(60), CancellationToken.None);
        var rest = await Store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), CancellationToken.None);

        Assert.Equal(2, two.Count);
        Assert.Equal(["c"], rest.Select(j => j.EventId));
    }

    [Fact]
    public async Task Complete_StaleAttemptAfterReLease_FencedOutAndFirstResultKept()
    {
        await Store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var stale = (await Store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(10), CancellationToken.None)).Single();
        var current = (await Store.LeaseAsync(Sources, 1, T0.AddSeconds(10), TimeSpan.FromSeconds(10), CancellationToken.None)).Single();

        var currentDone = await Store.CompleteAsync(current, Result("second worker"), Attempt(current, "success"), false, T0.AddSeconds(11), CancellationToken.None);
        var staleDone = await Store.CompleteAsync(stale, Result("first worker, late"), Attempt(stale, "success"), false, T0.AddSeconds(12), CancellationToken.None);
        var staleFail = await Store.FailAsync(stale, Attempt(stale, "retry", "late"), T0.AddSeconds(20), T0.AddSeconds(12), CancellationToken.None);

        Assert.True(currentDone);
        Assert.False(staleDone);
        Assert.False(staleFail);
        var detail = Assert.Single(await Query.FindAsync("a", null, CancellationToken.None));
        Assert.Equal(WebhookJobStatus.Completed, detail.Jobs.Single().Status);
        Assert.Equal("second worker", detail.Result!.Text);
        Assert.Equal(0.000123m, detail.Result.CostUsd);
        Assert.Equal(2, detail.Jobs.Single().History.Count);
    }

    [Fact]
    public async Task Complete_WithDelivery_QueuesOneDeliveryJobCarryingTheResult()
    {
        await Store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var job = (await Store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        await Store.CompleteAsync(job, Result("text"), Attempt(job, "success"), enqueueDelivery: true, T0, CancellationToken.None);
        var delivery = (await Store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        Assert.Equal(WebhookJobKind.Deliver, delivery.Kind);
        Assert.Equal("a", delivery.EventId);
        Assert.Equal("text", delivery.Result!.Text);
        Assert.Equal(1, delivery.Attempt);
    }

    [Fact]
    public async Task Fail_NextAttemptTime_DueOnlyFromThen()
    {
        await Store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var job = (await Store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        await Store.FailAsync(job, Attempt(job, "retry", "503 upstream"), T0.AddSeconds(5), T0, CancellationToken.None);

        Assert.Empty(await Store.LeaseAsync(Sources, 1, T0.AddSeconds(4.999), TimeSpan.FromSeconds(60), CancellationToken.None));
        var retried = (await Store.LeaseAsync(Sources, 1, T0.AddSeconds(5), TimeSpan.FromSeconds(60), CancellationToken.None)).Single();
        Assert.Equal((2, 2), (retried.Attempt, retried.Try));
        var stats = Assert.Single(await Query.StatsAsync(T0.AddSeconds(5), CancellationToken.None));
        Assert.Equal(1, stats.Leased);
    }

    [Fact]
    public async Task Release_AtShutdown_DueAtOnceAndTheTryNotCounted()
    {
        await Store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var job = (await Store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        await Store.ReleaseAsync(job, T0, CancellationToken.None);
        var again = (await Store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(60), CancellationToken.None)).Single();

        Assert.Equal((2, 1), (again.Attempt, again.Try));
    }

    [Fact]
    public async Task DeadLetter_ReplayOneAndAll_PurgeDead()
    {
        await Store.EnqueueAsync([Draft("a"), Draft("b"), Draft("c")], T0, CancellationToken.None);
        foreach (var job in await Store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), CancellationToken.None))
        {
            await Store.DeadLetterAsync(job, Attempt(job, "dead", "400 bad"), T0, CancellationToken.None);
        }

        Assert.Equal(3, (await Query.ListAsync(new WebhookListQuery(Status: WebhookJobStatus.Dead), CancellationToken.None)).Count);
        Assert.Equal(WebhookReplayOutcome.Replayed, await Store.ReplayAsync("twill", "a", T0.AddMinutes(1), CancellationToken.None));
        Assert.Equal(WebhookReplayOutcome.NothingToReplay, await Store.ReplayAsync("twill", "a", T0.AddMinutes(1), CancellationToken.None));
        Assert.Equal(WebhookReplayOutcome.NotFound, await Store.ReplayAsync("twill", "zzz", T0.AddMinutes(1), CancellationToken.None));
        var replayed = (await Store.LeaseAsync(Sources, 10, T0.AddMinutes(1), TimeSpan.FromSeconds(60), CancellationToken.None)).Single();
        Assert.Equal(("a", 2, 1), (replayed.EventId, replayed.Attempt, replayed.Try));

        Assert.Equal(0, await Store.ReplayDeadAsync("other", T0, CancellationToken.None));
        Assert.Equal(2, await Store.ReplayDeadAsync(null, T0.AddMinutes(1.5), CancellationToken.None));
        foreach (var job in await Store.LeaseAsync(Sources, 10, T0.AddMinutes(1.5), TimeSpan.FromSeconds(60), CancellationToken.None))
        {
            await Store.DeadLetterAsync(job, Attempt(job, "dead", "400 bad"), T0, CancellationToken.None);
        }

        Assert.Equal(2, await Store.PurgeDeadAsync("twill", CancellationToken.None));
        Assert.Equal(["a"], (await Query.ListAsync(new WebhookListQuery(), CancellationToken.None)).Select(e => e.EventId));
        Assert.Empty(await Query.FindAsync("b", null, CancellationToken.None));
    }

    [Fact]
    public async Task PurgeFinished_OldCompletedAndSkippedGoWithTheirResults_UnfinishedDeadAndNewStay()
    {
        var ct = CancellationToken.None;
        await Store.EnqueueAsync([Draft("done"), Draft("skipped", skip: true), Draft("dead"), Draft("retrying")], T0, ct);
        var leased = (await Store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(60), ct)).ToDictionary(j => j.EventId);
        await Store.CompleteAsync(leased["done"], Result("old"), Attempt(leased["done"], "success"), enqueueDelivery: false, T0, ct);
        await Store.DeadLetterAsync(leased["dead"], Attempt(leased["dead"], "dead", "400 bad"), T0, ct);
        await Store.FailAsync(leased["retrying"], Attempt(leased["retrying"], "retry", "503"), T0.AddDays(30), T0, ct);
        await Store.EnqueueAsync([Draft("waiting")], T0.AddMinutes(1), ct);
        await Store.EnqueueAsync([Draft("new")], T0.AddDays(10), ct);
        var due = (await Store.LeaseAsync(Sources, 10, T0.AddDays(10), TimeSpan.FromSeconds(60), ct)).ToDictionary(j => j.EventId);
        await Store.CompleteAsync(due["new"], Result("recent"), Attempt(due["new"], "success"), enqueueDelivery: false, T0.AddDays(10), ct);
        await Store.ReleaseAsync(due["waiting"], T0.AddDays(10), ct);

        Assert.Equal(1, await Store.PurgeFinishedAsync(T0.AddDays(5), max: 1, ct));
        Assert.Equal(1, await Store.PurgeFinishedAsync(T0.AddDays(5), max: 1, ct));
        Assert.Equal(0, await Store.PurgeFinishedAsync(T0.AddDays(5), max: 1000, ct));

        Assert.Equal(["new", "waiting", "retrying", "dead"], (await Query.ListAsync(new WebhookListQuery(), ct)).Select(e => e.EventId));
        Assert.Equal("recent", Assert.Single(await Query.FindAsync("new", null, ct)).Result!.Text);

        // Its result went with it: the same id sent again is a new event, and its new result is the one kept.
        Assert.Equal([true], await Store.EnqueueAsync([Draft("done")], T0.AddDays(11), ct));
        var again = (await Store.LeaseAsync(Sources, 10, T0.AddDays(11), TimeSpan.FromSeconds(60), ct)).Single(j => j.EventId == "done");
        await Store.CompleteAsync(again, Result("fresh"), Attempt(again, "success"), enqueueDelivery: false, T0.AddDays(11), ct);
        Assert.Equal("fresh", Assert.Single(await Query.FindAsync("done", null, ct)).Result!.Text);
    }

    [Fact]
    public async Task List_PagesNewestFirstAndFiltersBySourceAndStatus()
    {
        await Store.EnqueueAsync([Draft("a"), Draft("b"), Draft("c"), Draft("d", skip: true), new WebhookEventDraft("other", "x", "t", "{}"u8.ToArray())], T0, CancellationToken.None);

        var page = await Query.ListAsync(new WebhookListQuery(Source: "twill", Limit: 2), CancellationToken.None);
        var next = await Query.ListAsync(new WebhookListQuery(Source: "twill", Before: page[^1].Sequence, Limit: 10), CancellationToken.None);
        var skipped = await Query.ListAsync(new WebhookListQuery(Status: WebhookJobStatus.Skipped), CancellationToken.None);

        Assert.Equal(["d", "c"], page.Select(e => e.EventId));
        Assert.Equal(["b", "a"], next.Select(e => e.EventId));
        Assert.Equal(["d"], skipped.Select(e => e.EventId));
    }

    [Fact]
    public async Task Stats_ExpiredLeaseCountsAsWaitingWithTheOldestAge()
    {
        await Store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        await Store.EnqueueAsync([Draft("b")], T0.AddSeconds(30), CancellationToken.None);
        await Store.LeaseAsync(Sources, 1, T0.AddSeconds(30), TimeSpan.FromSeconds(10), CancellationToken.None);

        var during = Assert.Single(await Query.StatsAsync(T0.AddSeconds(35), CancellationToken.None));
        var after = Assert.Single(await Query.StatsAsync(T0.AddSeconds(45), CancellationToken.None));

        Assert.Equal((1L, 1L, T0.AddSeconds(30)), (during.Waiting, during.Leased, during.OldestWaitingSince!.Value));
        Assert.Equal((2L, 0L), (after.Waiting, after.Leased));
    }

    [Fact]
    public async Task Find_FailedThenCompleted_EveryFieldRoundTrips()
    {
        var payload = Encoding.UTF8.GetBytes("{\"id\":\"é\",\"data\":\"\u2028 \\u0000 😀\"}");
        await Store.EnqueueAsync([new WebhookEventDraft("twill", "é", "agent.failed", payload)], T0, CancellationToken.None);
        var first = (await Store.LeaseAsync(Sources, 1, T0.AddSeconds(1), TimeSpan.FromSeconds(60), CancellationToken.None)).Single();
        var longError = new string('x', 3000);
        await Store.FailAsync(first, new WebhookAttempt(first.Attempt, T0.AddSeconds(1), 7.25, "retry", 503, longError, "wh-twill-1"), T0.AddSeconds(5), T0.AddSeconds(2), CancellationToken.None);

        var failed = Assert.Single(await Query.FindAsync("é", "twill", CancellationToken.None));
        var second = (await Store.LeaseAsync(Sources, 1, T0.AddSeconds(5), TimeSpan.FromSeconds(60), CancellationToken.None)).Single();
        var result = new WebhookResult
        {
            Model = "deepseek-v3.2", Text = "Fix the retry loop ✓", FinishReason = "stop", PromptTokens = 120, CompletionTokens = 64,
            CostUsd = 0.000077312m, LatencyMs = 812.4, RequestId = "wh-twill-2", CompletedAt = T0.AddSeconds(6),
        };
        Assert.True(await Store.CompleteAsync(second, result, new WebhookAttempt(second.Attempt, T0.AddSeconds(5), 812.4, "success", 200, null, "wh-twill-2"), false, T0.AddSeconds(6), CancellationToken.None));
        var done = Assert.Single(await Query.FindAsync("é", null, CancellationToken.None));

        Assert.Equal(payload, first.Payload.ToArray());
        Assert.Equal(("agent.failed", T0), (first.EventType, first.ReceivedAt));
        var retrying = failed.Jobs.Single();
        Assert.Equal((WebhookJobKind.Process, WebhookJobStatus.Failed, 1, 1, T0.AddSeconds(5), T0.AddSeconds(2)), (retrying.Kind, retrying.Status, retrying.Attempts, retrying.Tries, retrying.NextAttemptAt, retrying.UpdatedAt));
        Assert.Equal(2001, retrying.LastError!.Length);
        Assert.Equal(new WebhookAttempt(1, T0.AddSeconds(1), 7.25, "retry", 503, longError[..2000] + "…", "wh-twill-1"), retrying.History.Single());
        Assert.Null(failed.Result);

        Assert.Equal((2, 2), (second.Attempt, second.Try));
        Assert.Equal(payload, done.Payload.ToArray());
        Assert.Equal(("twill", "é", "agent.failed", T0), (done.Source, done.EventId, done.EventType, done.ReceivedAt));
        var job = done.Jobs.Single();
        Assert.Equal((WebhookJobStatus.Completed, 2, 2, (string?)null), (job.Status, job.Attempts, job.Tries, job.LastError));
        Assert.Equal(["retry", "success"], job.History.Select(a => a.Outcome));
        Assert.Equal(result, done.Result);
        var summary = Assert.Single(await Query.ListAsync(new WebhookListQuery(Status: WebhookJobStatus.Completed), CancellationToken.None));
        Assert.Equal((done.Sequence, WebhookJobStatus.Completed, 2, (WebhookJobStatus?)null), (summary.Sequence, summary.Status, summary.Attempts, summary.DeliveryStatus));
    }

    [Fact]
    public async Task ExtendLease_HeldLease_StaysInvisibleUntilTheNewExpiryAndAStaleAttemptIsRefused()
    {
        await Store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var job = (await Store.LeaseAsync(Sources, 1, T0, TimeSpan.FromSeconds(10), CancellationToken.None)).Single();

        Assert.True(await Store.ExtendLeaseAsync(job.JobId, job.Attempt, T0.AddSeconds(30), CancellationToken.None));
        Assert.False(await Store.ExtendLeaseAsync(job.JobId, job.Attempt + 1, T0.AddSeconds(60), CancellationToken.None));

        Assert.Empty(await Store.LeaseAsync(Sources, 1, T0.AddSeconds(29), TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Single(await Store.LeaseAsync(Sources, 1, T0.AddSeconds(30), TimeSpan.FromSeconds(10), CancellationToken.None));
    }

    [Fact]
    public async Task Enqueue_SameEventsFromTwoInstancesAtOnce_EachStoredOnce()
    {
        var second = Open();
        var ids = Enumerable.Range(0, 200).Select(i => $"evt-{i:D3}").ToArray();

        // Overlapping batches in opposite orders, as when a sender retries on another instance while the first still holds the event.
        var forward = Task.Run(async () => (await Task.WhenAll(ids.Chunk(50).Select(c => Store.EnqueueAsync(c.Select(id => Draft(id)).ToArray(), T0, CancellationToken.None)))).SelectMany(r => r).ToArray());
        var backward = Task.Run(async () => (await Task.WhenAll(ids.Reverse().Chunk(40).Select(c => second.EnqueueAsync(c.Select(id => Draft(id)).ToArray(), T0, CancellationToken.None)))).SelectMany(r => r).ToArray());
        var a = await forward;
        var b = await backward;

        var storedA = ids.Where((_, i) => a[i]).ToHashSet();
        var storedB = ids.Reverse().Where((_, i) => b[i]).ToHashSet();
        Assert.Empty(storedA.Intersect(storedB));
        Assert.Equal(ids.Length, storedA.Count + storedB.Count);
        Assert.Equal(200, Assert.Single(await Query.StatsAsync(T0, CancellationToken.None)).Waiting);
    }

    [Fact]
    public async Task Lease_TwoInstancesAtOnce_NoJobLeasedTwiceWhileItsLeaseIsValid()
    {
        const int Jobs = 300;
        await Store.EnqueueAsync(Enumerable.Range(0, Jobs).Select(i => Draft($"evt-{i:D3}")).ToArray(), T0, CancellationToken.None);
        var instances = new[] { Store, Open() };

        // Three leasers per instance, each leasing a few at a time until nothing is left for it.
        var leasers = instances.SelectMany(store => Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            var mine = new List<WebhookLeasedJob>();
            while (true)
            {
                var jobs = await store.LeaseAsync(Sources, 7, T0.AddSeconds(1), TimeSpan.FromSeconds(60), CancellationToken.None);
                if (jobs.Count == 0)
                {
                    return mine;
                }

                mine.AddRange(jobs);
            }
        }))).ToArray();
        var leased = (await Task.WhenAll(leasers)).SelectMany(l => l).ToList();

        Assert.Equal(Jobs, leased.Count);
        Assert.Equal(Jobs, leased.Select(j => j.JobId).Distinct().Count());
        Assert.All(leased, j => Assert.Equal(1, j.Attempt));
        Assert.Empty(await instances[1].LeaseAsync(Sources, 100, T0.AddSeconds(60.9), TimeSpan.FromSeconds(60), CancellationToken.None));
        Assert.Equal(Jobs, Assert.Single(await Query.StatsAsync(T0.AddSeconds(2), CancellationToken.None)).Leased);
    }

    [Fact]
    public async Task Lease_InstanceDiedAndItsLeaseRanOut_AnotherInstanceTakesTheJobAndTheFirstIsFencedOut()
    {
        var second = Open();
        await Store.EnqueueAsync([Draft("a")], T0, CancellationToken.None);
        var lost = (await Store.LeaseAsync(Sources, 10, T0, TimeSpan.FromSeconds(5), CancellationToken.None)).Single();

        Assert.Empty(await second.LeaseAsync(Sources, 10, T0.AddSeconds(4.9), TimeSpan.FromSeconds(5), CancellationToken.None));
        var taken = (await second.LeaseAsync(Sources, 10, T0.AddSeconds(5), TimeSpan.FromSeconds(5), CancellationToken.None)).Single();

        Assert.Equal((lost.JobId, 2, 2), (taken.JobId, taken.Attempt, taken.Try));
        Assert.False(await Store.ExtendLeaseAsync(lost.JobId, lost.Attempt, T0.AddSeconds(30), CancellationToken.None));
        Assert.False(await Store.DeadLetterAsync(lost, Attempt(lost, "dead", "late"), T0.AddSeconds(6), CancellationToken.None));
        await Store.ReleaseAsync(lost, T0.AddSeconds(6), CancellationToken.None);
        Assert.Empty(await Store.LeaseAsync(Sources, 10, T0.AddSeconds(6), TimeSpan.FromSeconds(5), CancellationToken.None));
        Assert.True(await second.CompleteAsync(taken, Result("taken over"), Attempt(taken, "success"), false, T0.AddSeconds(7), CancellationToken.None));
        Assert.False(await Store.CompleteAsync(lost, Result("late"), Attempt(lost, "success"), false, T0.AddSeconds(8), CancellationToken.None));

        var detail = Assert.Single(await Query.FindAsync("a", "twill", CancellationToken.None));
        Assert.Equal((WebhookJobStatus.Completed, 2), (detail.Jobs.Single().Status, detail.Jobs.Single().Attempts));
        Assert.Equal("taken over", detail.Result!.Text);
    }
}
