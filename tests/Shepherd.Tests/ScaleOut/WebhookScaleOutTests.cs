namespace Shepherd.Tests.ScaleOut;

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Npgsql;
using Shepherd.Testing;
using Shepherd.Tests.Webhooks;
using Xunit.Abstractions;

/// <summary>
/// The webhook queue across instances: three <c>shepherd serve</c> processes sharing one PostgreSQL database (the
/// queue) and one Redis, signed events sent round-robin, one instance SIGKILLed while it holds leases. Every event is
/// acknowledged by some instance (the sender retries elsewhere, as a real one does), and every acknowledged event is
/// completed exactly once: one result per event, the dead instance's jobs taken over by the survivors once their
/// leases ran out.
/// </summary>
public sealed class WebhookScaleOutTests(ITestOutputHelper output)
{
    private const int Events = 2000;
    private const int KillAfter = Events / 2;

    [Fact]
    public async Task ThreeInstances_OneKilledMidway_EveryAcknowledgedEventCompletedExactlyOnce()
    {
        var clock = Stopwatch.StartNew();
        var directory = Directory.CreateTempSubdirectory("shepherd-webhooks-scaleout-").FullName;
        await using var redis = await RedisServer.StartAsync();
        await using var database = await (await PostgresServer.StartAsync()).CreateDatabaseAsync();
        var configPath = Path.Combine(directory, "shepherd.yaml");

        // Model calls (50 ms each, 16 workers per instance) are slower than intake, so the queue is never empty while
        // events arrive: the instance killed midway holds leases when it dies. A short lease brings its jobs back soon.
        await File.WriteAllTextAsync(configPath, $$$"""
            master_key: {{{ScaleOutCluster.MasterKey}}}
            storage: "{{{database.ConnectionString}}}"
            state: { redis: "{{{redis.Endpoint}}}", prefix: "w{{{Guid.NewGuid():N}}}" }
            logging: { level: warning, requests: false }
            providers:
              - name: sim
                type: simulated
                simulated: { time_to_first_token_ms: 50, completion_tokens: 5 }
            models:
              - name: deepseek-v3.2
                deployments: [ { provider: sim } ]
            webhooks:
              workers: 16
              lease_s: 2
              retry: { max_attempts: 10, base_ms: 50, max_ms: 500 }
              sources:
                - name: twill
                  secrets: [ "{{{WebhookFixtures.Secret}}}" ]
                  signature_header: x-twill-signature
                  type_field: event_type
                  rules:
                    - { on: agent.completed, model: deepseek-v3.2, user: "{{ json data }}" }
            """);
        var instances = await Task.WhenAll(Enumerable.Range(1, 3).Select(i =>
            ShepherdProcess.StartAsync(configPath, Directory.CreateDirectory(Path.Combine(directory, $"instance{i}")).FullName)));
        var started = clock.Elapsed;
        var victim = instances[1];
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            var acknowledged = new ConcurrentDictionary<string, HttpStatusCode>();
            var unexpected = new ConcurrentBag<string>();
            var unavailable = 0;
            var killed = 0;
            Task? kill = null;
            var next = 0;
            using var gate = new SemaphoreSlim(48);
            await Task.WhenAll(Enumerable.Range(0, Events).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    var id = $"evt-{i:D4}";
                    var body = WebhookFixtures.Event("agent.completed", id: id);

                    // Round-robin; on a connection failure or a 503, the sender tries the next instance.
                    for (var attempt = 0; ; attempt++)
                    {
                        Assert.True(attempt < 50, $"{id} was never acknowledged");
                        var instance = instances[(int)((uint)Interlocked.Increment(ref next) % instances.Length)];
                        HttpResponseMessage response;
                        try
                        {
                            response = await SendAsync(http, instance.BaseUrl, body);
                        }
                        catch (HttpRequestException)
                        {
                            continue;
                        }

                        using (response)
                        {
                            if (response.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.OK)
                            {
                                acknowledged[id] = response.StatusCode;
                                break;
                            }

                            if (response.StatusCode != HttpStatusCode.ServiceUnavailable)
                            {
                                unexpected.Add($"{id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                                break;
                            }

                            Interlocked.Increment(ref unavailable);
                        }
                    }

                    if (acknowledged.Count >= KillAfter && Interlocked.Exchange(ref killed, 1) == 0)
                    {
                        kill = victim.KillAsync();
                    }
                }
                finally
                {
                    gate.Release();
                }
            }));
            await kill!;
            var sent = clock.Elapsed;

            Assert.True(unexpected.IsEmpty, string.Join("\n", unexpected.Take(10)));
            Assert.Equal(Events, acknowledged.Count);
            await WaitForAsync(async () => await CountAsync(database, "SELECT count(*) FROM webhook_jobs WHERE status = 'completed'") == Events, TimeSpan.FromSeconds(90), instances);
            var done = clock.Elapsed;

            // Exactly once: one result per acknowledged event, every job completed, nothing else stored.
            Assert.Equal(acknowledged.Keys.Order(StringComparer.Ordinal), await IdsAsync(database, "SELECT event_id FROM webhook_results ORDER BY event_id COLLATE \"C\""));
            Assert.Equal(Events, await CountAsync(database, "SELECT count(*) FROM webhook_events"));
            Assert.Equal(0, await CountAsync(database, "SELECT count(*) FROM webhook_jobs WHERE status <> 'completed' OR kind <> 'process'"));

            // The killed instance's jobs were taken over by the survivors: their leases ran out and they were leased
            // again with the next attempt number.
            var takenOver = await CountAsync(database, "SELECT count(*) FROM webhook_jobs WHERE attempts > 1");
            Assert.True(takenOver > 0, "no job was taken over from the killed instance\n" + Diagnostics(instances));

            // Both survivors report the shared queue: every event completed, nothing waiting or leased.
            foreach (var survivor in new[] { instances[0], instances[2] })
            {
                var ready = JsonNode.Parse(await http.GetStringAsync(survivor.BaseUrl + "/health/ready"))!;
                var source = ready["webhooks"]!["sources"]![0]!;
                Assert.Equal((Events, 0, 0), (source["completed"]!.GetValue<int>(), source["waiting"]!.GetValue<int>(), source["leased"]!.GetValue<int>()));
            }

            output.WriteLine(
                $"3 instances ready in {started.TotalSeconds:F1} s; {Events} events acknowledged in {(sent - started).TotalSeconds:F1} s " +
                $"({acknowledged.Values.Count(s => s == HttpStatusCode.OK)} retried sends answered duplicate, {unavailable} answered 503); " +
                $"all completed {(done - started).TotalSeconds:F1} s after start; {takenOver} job(s) taken over; test {clock.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            foreach (var instance in instances)
            {
                await instance.DisposeAsync();
            }

            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, string baseUrl, string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, baseUrl + "/webhooks/twill") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("x-twill-signature", WebhookFixtures.Sign(body));
        return await http.SendAsync(request);
    }

    private static Task WaitForAsync(Func<Task<bool>> condition, TimeSpan timeout, ShepherdProcess[] instances) =>
        Eventually.HoldsAsync(condition, "the instances' work", timeout, () => Diagnostics(instances));

    private static string Diagnostics(ShepherdProcess[] instances) =>
        string.Join("\n", instances.Select((p, i) => $"--- instance {i + 1} ---\n{p.Output}"));

    private static async Task<long> CountAsync(TestDatabase database, string sql)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<List<string>> IdsAsync(TestDatabase database, string sql)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new List<string>();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }
}
