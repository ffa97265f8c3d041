namespace Shepherd.Tests.ScaleOut;

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Shepherd.Testing;

/// <summary>
/// Three real <c>shepherd serve</c> processes sharing one Redis and one PostgreSQL database (a fresh one per test
/// class), with a simulated provider that has a price and two fake OpenAI upstreams (one for breakers, one for
/// upstream keys). Started once per test class: process start-up dominates.
/// </summary>
public sealed class ScaleOutCluster : IAsyncLifetime
{
    public const string MasterKey = "sk-test-master-scaleout-0123456789";

    private readonly string _directory = Directory.CreateTempSubdirectory("shepherd-scaleout-").FullName;
    private RedisServer _redis = null!;
    private TestDatabase _database = null!;
    private int _next;

    /// <summary>The breaker test's upstream (answers whatever its fault plan says).</summary>
    public FakeOpenAI Flaky { get; private set; } = null!;

    /// <summary>The upstream-key test's upstream (refuses keys on demand).</summary>
    public FakeOpenAI Keyed { get; private set; } = null!;

    public ShepherdProcess[] Instances { get; private set; } = [];

    public HttpClient[] Admin { get; private set; } = [];

    /// <summary>The PostgreSQL database the three share.</summary>
    public string ConnectionString => _database.ConnectionString;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _database = await (await PostgresServer.StartAsync()).CreateDatabaseAsync();
        Flaky = await FakeOpenAI.StartAsync();
        Keyed = await FakeOpenAI.StartAsync();
        var config = Path.Combine(_directory, "shepherd.yaml");
        await File.WriteAllTextAsync(config, $"""
            master_key: {MasterKey}
            storage: "{_database.ConnectionString}"
            state: {"{"} redis: "{_redis.Endpoint}", prefix: "t{Guid.NewGuid():N}" {"}"}
            logging: {"{"} level: warning, requests: false {"}"}
            routing:
              max_attempts: 1
              health_probe_interval_s: 0
              breaker: {"{"} consecutive_failures: 3, cooldown_s: 120 {"}"}
            providers:
              - name: sim
                type: simulated
                simulated: {"{"} completion_tokens: 10 {"}"}
              - name: flaky
                type: openai
                base_url: {Flaky.BaseUrl}
                api_keys: [ sk-upstream-flaky ]
              - name: keyed
                type: openai
                base_url: {Keyed.BaseUrl}
                api_keys: [ sk-upstream-refused, sk-upstream-good ]
            models:
              - name: sim-model
                price: {"{"} input: 1.00, output: 2.00 {"}"}
                deployments: [ {"{"} provider: sim {"}"} ]
              - name: flaky-model
                deployments: [ {"{"} provider: flaky, model: up {"}"} ]
              - name: keyed-model
                deployments: [ {"{"} provider: keyed, model: up {"}"} ]
            """);

        // Started together, as a deployment would: migrations run under an advisory lock.
        Instances = await Task.WhenAll(Enumerable.Range(1, 3).Select(i =>
        {
            var home = Directory.CreateDirectory(Path.Combine(_directory, $"instance{i}")).FullName;
            return ShepherdProcess.StartAsync(config, home);
        }));
        Admin = Instances.Select(i => i.CreateClient(MasterKey)).ToArray();
    }

    public async Task DisposeAsync()
    {
        foreach (var client in Admin)
        {
            client.Dispose();
        }

        foreach (var instance in Instances)
        {
            await instance.DisposeAsync();
        }

        await Flaky.DisposeAsync();
        await Keyed.DisposeAsync();
        await _database.DisposeAsync();
        await _redis.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The next instance, round-robin.</summary>
    public ShepherdProcess Next() => Instances[(int)((uint)Interlocked.Increment(ref _next) % Instances.Length)];

    /// <summary>Creates a key through the admin API of <paramref name="instance"/>.</summary>
    public async Task<(string Id, string Secret)> CreateKeyAsync(int instance, object settings)
    {
        var response = await Admin[instance].PostAsJsonAsync("/admin/keys", settings);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var key = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return (key["id"]!.GetValue<string>(), key["key"]!.GetValue<string>());
    }

    /// <summary>What went wrong, for a failing assertion: every instance's output.</summary>
    public string Diagnostics() => string.Join("\n", Instances.Select((p, i) => $"--- instance {i + 1} ---\n{p.Output}"));
}
