namespace Shepherd.Tests.Webhooks;

using System.Text;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Storage.Sqlite;
using Shepherd.Testing;
using Shepherd.Webhooks;
using Shepherd.Webhooks.Retention;

/// <summary><c>webhooks.retention_days</c>: the hourly sweep on a real SQLite store, on a fake clock.</summary>
public sealed class WebhookRetentionTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 10, 0, 0, TimeSpan.Zero);
    private readonly string _directory = Directory.CreateTempSubdirectory("shepherd-retention-").FullName;
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

    private Task EnqueueSkippedAsync(string prefix, int count, DateTimeOffset at) =>
        _store.EnqueueAsync(
            Enumerable.Range(0, count).Select(i => new WebhookEventDraft("twill", $"{prefix}{i}", "t", Encoding.UTF8.GetBytes("{}"), true, "skipped")).ToList(),
            at,
            CancellationToken.None);

    private async Task<int> CountAsync() => (await ((IWebhookEventQuery)_store).StatsAsync(T0, CancellationToken.None)).Sum(s => (int)s.Skipped);

    [Fact]
    public async Task Sweep_MoreThanOneSlice_DeletesEveryFinishedEventOlderThanTheRetention()
    {
        await EnqueueSkippedAsync("old", 2 * WebhookRetention.Slice + 500, T0);
        await EnqueueSkippedAsync("young", 3, T0.AddDays(29));
        var retention = new WebhookRetention(_store, 30, new FakeTimeProvider(T0.AddDays(30).AddHours(1)), NullLogger<WebhookRetention>.Instance);

        Assert.Equal(2 * WebhookRetention.Slice + 500, await retention.SweepAsync(CancellationToken.None));
        Assert.Equal(3, await CountAsync());
    }

    [Fact]
    public async Task Service_SweepsAtStartAndThenEveryHour()
    {
        var time = new FakeTimeProvider(T0.AddDays(31));
        await EnqueueSkippedAsync("first", 5, T0);
        await EnqueueSkippedAsync("later", 7, T0.AddDays(1).AddMinutes(30));
        var retention = new WebhookRetention(_store, 30, time, NullLogger<WebhookRetention>.Instance);

        await retention.StartAsync(CancellationToken.None);
        try
        {
            await Eventually.HoldsAsync(async () => await CountAsync() == 7, "the first sweep deleted the 5 events older than 30 days", TimeSpan.FromSeconds(10));

            time.Advance(WebhookRetention.Interval);

            await Eventually.HoldsAsync(async () => await CountAsync() == 0, "the next hour's sweep deleted the other 7", TimeSpan.FromSeconds(10));
        }
        finally
        {
            await retention.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Service_RetentionZero_KeepsEverything()
    {
        await EnqueueSkippedAsync("old", 4, T0);
        var retention = new WebhookRetention(_store, 0, new FakeTimeProvider(T0.AddYears(5)), NullLogger<WebhookRetention>.Instance);

        await retention.StartAsync(CancellationToken.None);
        await retention.ExecuteTask!;

        Assert.Equal(4, await CountAsync());
    }
}
