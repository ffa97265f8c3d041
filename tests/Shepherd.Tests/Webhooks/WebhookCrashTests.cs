namespace Shepherd.Tests.Webhooks;

using System.Collections.Concurrent;
using System.Net;
using Microsoft.Data.Sqlite;
using Shepherd.Testing;
using static Shepherd.Tests.Webhooks.WebhookFixtures;

/// <summary>
/// Crash safety with the real executable: 1,000 signed events, SIGKILL while jobs are in flight, restart on the same
/// database: every acknowledged event is completed exactly once, none lost.
/// </summary>
public sealed class WebhookCrashTests
{
    private const int Events = 1000;

    [Fact]
    public async Task Serve_KilledWhileProcessing_EveryAcknowledgedEventCompletedOnceAfterRestart()
    {
        var directory = Directory.CreateTempSubdirectory("shepherd-crash-").FullName;
        var database = Path.Combine(directory, "shepherd.db");
        var configPath = Path.Combine(directory, "shepherd.yaml");
        await File.WriteAllTextAsync(configPath, $$$"""
            master_key: {{{GatewayHost.TestMasterKey}}}
            storage: sqlite:{{{database}}}
            logging: { level: information, requests: false }
            providers:
              - name: sim
                type: simulated
                simulated: { time_to_first_token_ms: 100, completion_tokens: 5 }
            models:
              - name: deepseek-v3.2
                deployments: [ { provider: sim } ]
            webhooks:
              workers: 16
              lease_s: 2
              sources:
                - name: twill
                  secrets: [ "{{{Secret}}}" ]
                  signature_header: x-twill-signature
                  type_field: event_type
                  rules:
                    - { on: agent.completed, model: deepseek-v3.2, user: "{{ json data }}" }
            """);
        var acknowledged = new ConcurrentBag<string>();
        try
        {
            await using (var first = await ShepherdProcess.StartAsync(configPath, directory))
            {
                using var client = new HttpClient { BaseAddress = new Uri(first.BaseUrl) };
                using var gate = new SemaphoreSlim(32);
                await Task.WhenAll(Enumerable.Range(0, Events).Select(async i =>
                {
                    await gate.WaitAsync();
                    try
                    {
                        var id = $"crash-{i:D4}";
                        using var response = await SendAsync(client, Event("agent.completed", id: id));
                        if (response.StatusCode == HttpStatusCode.Accepted)
                        {
                            acknowledged.Add(id);
                        }
                    }
                    finally
                    {
                        gate.Release();
                    }
                }));

                // Processing is slower than intake (16 workers, 100 ms a call): let some finish, then kill mid-flight,
                // at a moment jobs are seen leased (on a loaded machine, calls may also be failing and waiting for
                // their retry, with nothing leased for a while).
                await WaitUntilAsync(
                    () => Task.FromResult(Count(database, "SELECT COUNT(*) FROM webhook_results") >= 50 && Count(database, "SELECT COUNT(*) FROM webhook_jobs WHERE status = 'leased'") > 0),
                    30_000);
                await first.KillAsync();
            }

            Assert.Equal(Events, acknowledged.Count);
            var doneAtCrash = Count(database, "SELECT COUNT(*) FROM webhook_results");
            var inFlightAtCrash = Count(database, "SELECT COUNT(*) FROM webhook_jobs WHERE status = 'leased'");
            Assert.True(doneAtCrash < Events, "everything finished before the kill: nothing was in flight");
            Assert.True(inFlightAtCrash > 0, "no job was leased at the kill");

            await using (var second = await ShepherdProcess.StartAsync(configPath, directory))
            {
                await WaitUntilAsync(() => Task.FromResult(Count(database, "SELECT COUNT(*) FROM webhook_jobs WHERE status = 'completed'") == Events), 60_000);

                // The same events sent again are duplicates: nothing is processed twice.
                using var client = new HttpClient { BaseAddress = new Uri(second.BaseUrl) };
                using var again = await SendAsync(client, Event("agent.completed", id: "crash-0000"));
                Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            }

            var results = Ids(database, "SELECT event_id FROM webhook_results ORDER BY event_id");
            Assert.Equal(acknowledged.Order(StringComparer.Ordinal), results);
            Assert.Equal(Events, Count(database, "SELECT COUNT(*) FROM webhook_events"));
            Assert.Equal(0, Count(database, "SELECT COUNT(*) FROM webhook_jobs WHERE status <> 'completed'"));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static SqliteConnection Open(string database)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = database, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>Counts rows; a query that fails (a renamed column, a missing table) fails the test rather than counting 0.
    /// The database exists and is migrated by then: the gateway migrates it before it acknowledges the first event.</summary>
    private static long Count(string database, string sql)
    {
        using var connection = Open(database);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)command.ExecuteScalar()!;
    }

    private static List<string> Ids(string database, string sql)
    {
        using var connection = Open(database);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var ids = new List<string>();
        while (reader.Read())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }
}
