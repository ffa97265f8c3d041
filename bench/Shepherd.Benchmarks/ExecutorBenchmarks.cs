namespace Shepherd.Benchmarks;

using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Health;
using Shepherd.Providers;
using Shepherd.Routing;

/// <summary>
/// What routing and the resilient executor add per request on the happy path: strategy ordering, key and breaker
/// checks, the deployment slot, the attempt bookkeeping — against an upstream that answers at once.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class ExecutorBenchmarks
{
    private static readonly byte[] Body = Encoding.UTF8.GetBytes(
        """{"model":"m","messages":[{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":64}""");

    private ChatExecutor _executor = null!;
    private CatalogModel _single = null!;
    private CatalogModel _three = null!;
    private ChatRequest _request = null!;
    private InstantProvider _provider = null!;

    [GlobalSetup]
    public void Setup()
    {
        var config = ConfigLoader.LoadYaml("""
            providers:
              - { name: a, type: simulated, api_keys: [ k1, k2 ] }
              - { name: b, type: simulated }
              - { name: c, type: simulated }
            models:
              - { name: single, deployments: [ { provider: a } ] }
              - name: three
                deployments:
                  - { provider: a, weight: 2 }
                  - { provider: b }
                  - { provider: c, priority: 1 }
            """, "bench", _ => null).Config!;
        _provider = new InstantProvider();
        var handles = config.Providers.ToDictionary(p => p.Name, p => new ProviderHandle(_provider, new UpstreamKeyRing(p.ApiKeys, p.Name)));
        var catalog = new ModelCatalog(config, handles, TimeProvider.System);
        _single = catalog.Models[0];
        _three = catalog.Models[1];
        _executor = new ChatExecutor(new ProviderStatusBoard(config.Providers.Select(p => (p.Name, p.Type)), TimeProvider.System), config, TimeProvider.System, NullLogger<ChatExecutor>.Instance);
        _request = ChatRequestParser.Parse(Body, out _)!;
    }

    [Benchmark(Baseline = true, Description = "provider called directly (no routing)")]
    public async ValueTask<int> Direct()
    {
        var outcome = await _provider.CompleteAsync(new UpstreamCall(_request, "m", "k1"), CancellationToken.None);
        return outcome.Value!.Json.Length;
    }

    [Benchmark(Description = "executor, one deployment")]
    public async ValueTask<int> OneDeployment()
    {
        var execution = await _executor.CompleteAsync(_request, _single, ExecutionOptions.Default, CancellationToken.None);
        return execution.Value!.Json.Length;
    }

    [Benchmark(Description = "executor, three deployments (priority tiers, weights)")]
    public async ValueTask<int> ThreeDeployments()
    {
        var execution = await _executor.CompleteAsync(_request, _three, ExecutionOptions.Default, CancellationToken.None);
        return execution.Value!.Json.Length;
    }

    /// <summary>An upstream that answers at once with a fixed completion: only the routing cost remains.</summary>
    private sealed class InstantProvider : IChatProvider
    {
        private static readonly ChatCompletion Answer = new("""{"id":"x","object":"chat.completion","choices":[]}"""u8.ToArray(), new Usage(10, 5));

        public string Name => "instant";

        public string Type => "simulated";

        public ProviderCapabilities Capabilities { get; } = new(true, true, true);

        public ValueTask<UpstreamOutcome<ChatCompletion>> CompleteAsync(UpstreamCall call, CancellationToken cancellationToken) =>
            ValueTask.FromResult(UpstreamOutcome<ChatCompletion>.Success(Answer));

        public ValueTask<UpstreamOutcome<ChatStream>> StreamAsync(UpstreamCall call, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
    }
}
