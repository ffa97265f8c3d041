namespace Shepherd.Routing;

using System.Collections.Frozen;
using Shepherd.Configuration;
using Shepherd.Providers;
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
    }

    public string Name => Config.Name;

    public ModelConfig Config { get; }

    public IReadOnlyList<CatalogDeployment> Deployments { get; }

    /// <summary>Unix seconds shown as <c>created</c> in <c>/v1/models</c> (the gateway's start time).</summary>
    public long Created { get; }

    public string OwnedBy { get; }
}

/// <summary>One way to serve a model: a provider and the model name it knows.</summary>
public sealed class CatalogDeployment(ProviderHandle handle, string upstreamModel, int index)
{
    public ProviderHandle Handle { get; } = handle;

    public IChatProvider Provider => Handle.Provider;

    public string UpstreamModel { get; } = upstreamModel;

    /// <summary>Position in the model's deployment list.</summary>
    public int Index { get; } = index;

    /// <summary>A short, stable id for headers and logs: <c>provider/model</c>.</summary>
    public string Id { get; } = $"{handle.Name}/{upstreamModel}";
}

/// <summary>Resolves client model names and aliases (case-insensitive) to configured models.</summary>
public sealed class ModelCatalog
{
    private readonly FrozenDictionary<string, CatalogModel> _byName;
    private readonly FrozenDictionary<string, CatalogModel>.AlternateLookup<ReadOnlySpan<char>> _bySpan;

    public ModelCatalog(ShepherdConfig config, IReadOnlyDictionary<string, ProviderHandle> providers, TimeProvider time)
    {
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var models = new List<CatalogModel>(config.Models.Count);
        var map = new Dictionary<string, CatalogModel>(StringComparer.OrdinalIgnoreCase);
        foreach (var model in config.Models)
        {
            var deployments = model.Deployments
                .Select((d, i) => new CatalogDeployment(providers[d.Provider], d.Model ?? model.Name, i))
                .ToArray();
            var entry = new CatalogModel(model, deployments, created);
            models.Add(entry);
            map[model.Name] = entry;
            foreach (var alias in model.Aliases)
            {
                map[alias] = entry;
            }
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
