namespace Shepherd.Routing;

using System.Collections.Frozen;
using Shepherd.Configuration;
using Shepherd.Providers;
using Shepherd.Resilience;
using Shepherd.Routing.Strategies;
using Shepherd.Text;

/// <summary>A configured model with its deployments bound to live providers.</summary>
public sealed class CatalogModel
{
    public CatalogModel(ModelConfig config, IReadOnlyList<CatalogDeployment> deployments, long created)
    {
        Config = config;
        Deployments = deployments;
        Created = created;
        OwnedBy = config.OwnedBy ?? deployments.FirstOrDefault()?.Provider.Type ?? "shepherd";
        Strategy = RoutingStrategies.TryGet(config.Strategy, out var strategy) ? strategy : RoutingStrategies.Get(RoutingStrategies.Default);
        NeedsPromptTokens = Strategy is CostStrategy || deployments.Any(d => d.Config.Tpm is not null);
    }

    public string Name => Config.Name;

    public ModelConfig Config { get; }

    public IReadOnlyList<CatalogDeployment> Deployments { get; }

    public IRoutingStrategy Strategy { get; }

    /// <summary>Routing this model needs the prompt's token count (cost-aware ordering, or a deployment with a TPM limit).</summary>
    public bool NeedsPromptTokens { get; }

    /// <summary>The models tried when this one cannot serve, in order (resolved from <c>fallbacks</c>).</summary>
    public IReadOnlyList<CatalogModel> Fallbacks { get; internal set; } = [];

    /// <summary>Unix seconds shown as <c>created</c> in <c>/v1/models</c> (the gateway's start time).</summary>
    public long Created { get; }

    public string OwnedBy { get; }

    public int ContextWindow => Config.ContextWindow ?? int.MaxValue;

    /// <summary>The model's price in effect at <paramref name="at"/>.</summary>
    public PriceConfig? PriceAt(DateTimeOffset at) => Accounting.Pricing.At(Config.Price, Config.PriceHistory, at);
}

/// <summary>One way to serve a model: a provider, the model name it knows, and the deployment's live state.</summary>
public sealed class CatalogDeployment
{
    private readonly IReadOnlyList<PriceConfig> _modelHistory;

    public CatalogDeployment(ProviderHandle handle, string upstreamModel, int index, DeploymentConfig config, PriceConfig? modelPrice, IBreakerStore breakers, IReadOnlyList<PriceConfig>? modelHistory = null)
    {
        Handle = handle;
        UpstreamModel = upstreamModel;
        Index = index;
        Config = config;
        Price = config.Price ?? modelPrice;
        _modelHistory = modelHistory ?? [];
        Id = $"{handle.Name}/{upstreamModel}";
        State = new DeploymentState(
            breakers.Get($"deployment:{Id}"),
            config.MaxConcurrency,
            config.QueueSize,
            TimeSpan.FromMilliseconds(config.QueueTimeoutMs),
            config.Rpm,
            config.Tpm);
    }

    public ProviderHandle Handle { get; }

    public IChatProvider Provider => Handle.Provider;

    public string UpstreamModel { get; }

    /// <summary>Position in the model's deployment list.</summary>
    public int Index { get; }

    public DeploymentConfig Config { get; }

    /// <summary>The deployment's price, else the model's (current).</summary>
    public PriceConfig? Price { get; }

    /// <summary>The price in effect at <paramref name="at"/>: the deployment's own, else the model's with its history.</summary>
    public PriceConfig? PriceAt(DateTimeOffset at) =>
        Config.Price ?? Accounting.Pricing.At(Price, _modelHistory, at);

    /// <summary>A short, stable id for headers and logs: <c>provider/model</c>.</summary>
    public string Id { get; }

    public DeploymentState State { get; }
}

/// <summary>Resolves client model names and aliases (case-insensitive) to configured models.</summary>
public sealed class ModelCatalog
{
    private readonly FrozenDictionary<string, CatalogModel> _byName;
    private readonly FrozenDictionary<string, CatalogModel>.AlternateLookup<ReadOnlySpan<char>> _bySpan;

    public ModelCatalog(ShepherdConfig config, IReadOnlyDictionary<string, ProviderHandle> providers, TimeProvider time, IBreakerStore? breakers = null)
    {
        breakers ??= new InMemoryBreakerStore(config.Routing.Breaker);
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var models = new List<CatalogModel>(config.Models.Count);
        var map = new Dictionary<string, CatalogModel>(StringComparer.OrdinalIgnoreCase);

        // Breakers are keyed by provider/model, so two models served by the same upstream model share one breaker.
        foreach (var model in config.Models)
        {
            var bound = model.Deployments
                .Select((d, i) => new CatalogDeployment(providers[d.Provider], d.Model ?? model.Name, i, d, model.Price, breakers, model.PriceHistory))
                .ToArray();
            var entry = new CatalogModel(model, bound, created);
            models.Add(entry);
            map[model.Name] = entry;
            foreach (var alias in model.Aliases)
            {
                map[alias] = entry;
            }
        }

        foreach (var model in models)
        {
            model.Fallbacks = model.Config.Fallbacks
                .Select(name => map.GetValueOrDefault(name))
                .Where(m => m is not null && m != model)
                .Distinct()
                .ToArray()!;
        }

        Models = models;
        _byName = map.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        _bySpan = _byName.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Configured models in configuration order.</summary>
    public IReadOnlyList<CatalogModel> Models { get; }

    public bool TryResolve(string name, out CatalogModel model) => _byName.TryGetValue(name, out model!);

    public bool TryResolve(ReadOnlySpan<char> name, out CatalogModel model) => _bySpan.TryGetValue(name, out model!);

    /// <summary>Up to <paramref name="count"/> configured names closest to <paramref name="name"/>, for 404 messages.</summary>
    public IReadOnlyList<string> Closest(string name, int count = 3, Func<CatalogModel, bool>? visible = null) =>
        _byName
            .Where(pair => visible is null || visible(pair.Value))
            .Select(pair => (Name: pair.Key, Distance: Levenshtein.Distance(name, pair.Key)))
            .OrderBy(x => x.Distance)
            .ThenBy(x => x.Name, StringComparer.Ordinal)
            .Take(count)
            .Select(x => x.Name)
            .ToArray();
}
