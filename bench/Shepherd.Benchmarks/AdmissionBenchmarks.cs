namespace Shepherd.Benchmarks;

using System.Text;
using BenchmarkDotNet.Attributes;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Keys;
using Shepherd.Limits;
using Shepherd.Routing;
using Shepherd.Security;

/// <summary>
/// Authentication and every limit check plus the reservation, on the in-memory path, for a virtual key with all
/// limits set (RPM, TPM, parallel, daily/monthly/total budgets and credit) — and settling the lease afterwards.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class AdmissionBenchmarks
{
    private static readonly byte[] Body = Encoding.UTF8.GetBytes(
        """{"model":"gpt-4.1","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":64,"temperature":0.2}""");

    private readonly SteppingTime _time = new(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
    private KeyRegistry _registry = null!;
    private InMemoryLimiter _limiter = null!;
    private Admission _admission = null!;
    private CatalogModel _model = null!;
    private ChatRequest _request = null!;
    private string _secret = null!;
    private System.Net.IPAddress _address = System.Net.IPAddress.Loopback;

    [GlobalSetup]
    public void Setup()
    {
        var config = ConfigLoader.LoadYaml("""
            providers: [ { name: sim, type: simulated } ]
            models: [ { name: gpt-4.1, price: { input: 2, output: 8 }, deployments: [ { provider: sim } ] } ]
            """, "bench", _ => null).Config!;
        var providers = config.Providers.ToDictionary(
            p => p.Name,
            p => new ProviderHandle(Providers.ProviderFactory.Create(p, _time), new UpstreamKeyRing(p.ApiKeys)));
        var catalog = new ModelCatalog(config, providers, _time);
        _model = catalog.Models[0];
        _registry = new KeyRegistry(new MasterKey("sk-master", generated: false), _time);
        _secret = "sk-shp-" + new string('A', 43);
        var record = new VirtualKeyRecord
        {
            Id = "key_bench",
            Name = "bench",
            Hash = KeyRegistry.DigestHex(_secret),
            Display = "sk-shp-AAAA…AAAA",
            CreatedAt = _time.GetUtcNow(),
            AllowedModels = ["gpt-*"],
            IpAllowlist = ["127.0.0.0/8", "10.0.0.0/8"],
            Rpm = 100_000,
            Tpm = int.MaxValue,
            MaxParallel = 1000,
            DailyBudget = 1_000_000m,
            MonthlyBudget = 1_000_000m,
            TotalBudget = 1_000_000_000m,
            CreditBalance = 1_000_000_000m,
        };
        var runtime = new KeyRuntime();
        runtime.Restore(DateOnly.FromDateTime(_time.GetUtcNow().UtcDateTime), 0m, 0m, 0m, record.CreditBalance);
        _registry.Put(new KeyEntry(record, ModelAccess.Resolve(record.AllowedModels, catalog), runtime));
        _limiter = new InMemoryLimiter(_time, BudgetCalendar.Utc);
        _admission = new Admission(_limiter, TokenEstimator.Default, 4096);
        _request = ChatRequestParser.Parse(Body, out _)!;

        // Size the key's request window once, outside the measurement (a one-time allocation per key).
        AdmitWithoutTokenizer();
    }

    [Benchmark(Description = "auth + IP + model + limits + reserve + settle (all limits, with token estimate)")]
    public async ValueTask<bool> AdmitAllLimits()
    {
        var caller = _registry.Authenticate(_secret).Caller!;
        if (Admission.CheckAddress(caller, _address) is not null || Admission.CheckModel(caller, _model) is not null)
        {
            return false;
        }

        var decision = await _admission.AdmitAsync(caller, _request, _model, null, CancellationToken.None);
        await _admission.SettleAsync(decision.Lease, new Usage(30, 12), 0.0001m);
        return decision.Allowed;
    }

    [Benchmark(Description = "auth + IP + model + limits + reserve + settle (precomputed estimate)")]
    public bool AdmitWithoutTokenizer()
    {
        var caller = _registry.Authenticate(_secret).Caller!;
        if (Admission.CheckAddress(caller, _address) is not null || Admission.CheckModel(caller, _model) is not null)
        {
            return false;
        }

        var decision = _limiter.Acquire(caller.Key!, new LimitRequest(94, 0.0006m));
        _limiter.Settle(decision.Lease, 42, 0.0001m);
        return decision.Allowed;
    }

    [Benchmark(Description = "authenticate a virtual key (SHA-256 + constant-time compare)")]
    public bool Authenticate() => _registry.Authenticate(_secret).Caller is not null;

    [Benchmark(Description = "estimate prompt tokens (o200k_base)")]
    public int EstimatePrompt() => TokenEstimator.Default.EstimatePrompt(_request);
}

/// <summary>A clock that moves 1 ms each time it is read, so sliding windows slide during a benchmark run.</summary>
internal sealed class SteppingTime(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Add(ref _ticks, TimeSpan.TicksPerMillisecond), TimeSpan.Zero);
}
