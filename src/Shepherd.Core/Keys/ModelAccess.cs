namespace Shepherd.Keys;

using System.Collections.Frozen;
using Shepherd.Routing;

/// <summary>Which configured models a key may call, resolved once from its patterns (names, aliases, <c>*</c> wildcards).</summary>
public sealed class ModelAccess
{
    public static readonly ModelAccess All = new(null);

    private readonly FrozenSet<string>? _allowed;
    private readonly FrozenSet<string>? _virtual;

    private ModelAccess(FrozenSet<string>? allowed, FrozenSet<string>? virtualModels = null)
    {
        _allowed = allowed;
        _virtual = virtualModels;
    }

    public bool AllowsAll => _allowed is null;

    public bool Allows(CatalogModel model) => _allowed is null || _allowed.Contains(model.Name);

    /// <summary>The key may call the virtual model (router) <paramref name="name"/>, whatever model it routes to.</summary>
    public bool AllowsVirtualModel(string name) => _allowed is null || (_virtual?.Contains(name) ?? false);

    /// <summary>Resolves <paramref name="patterns"/> against the catalog.</summary>
    /// <param name="patterns">Names, aliases or globs; empty or <c>*</c> allows every model.</param>
    /// <param name="catalog">The configured models.</param>
    /// <param name="unmatched">Receives each pattern that matches no configured model (an admin mistake).</param>
    /// <param name="virtualModels">The virtual model (router) names, which patterns may allow too.</param>
    public static ModelAccess Resolve(IReadOnlyList<string> patterns, ModelCatalog catalog, List<string>? unmatched = null, IEnumerable<string>? virtualModels = null)
    {
        if (patterns.Count == 0 || patterns.Any(p => p.Trim() == "*"))
        {
            return All;
        }

        var allowed = new HashSet<string>(StringComparer.Ordinal);
        var allowedVirtual = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var routers = virtualModels?.ToArray() ?? [];
        foreach (var pattern in patterns)
        {
            var matched = false;
            foreach (var router in routers)
            {
                if (Glob.Matches(pattern, router))
                {
                    allowedVirtual.Add(router);
                    matched = true;
                }
            }

            foreach (var model in catalog.Models)
            {
                if (Glob.Matches(pattern, model.Name) || model.Config.Aliases.Any(a => Glob.Matches(pattern, a)))
                {
                    allowed.Add(model.Name);
                    matched = true;
                }
            }

            if (!matched)
            {
                unmatched?.Add(pattern);
            }
        }

        return new ModelAccess(allowed.ToFrozenSet(StringComparer.Ordinal), allowedVirtual.ToFrozenSet(StringComparer.OrdinalIgnoreCase));
    }
}

/// <summary>Case-insensitive <c>*</c> globs (e.g. <c>gpt-4*</c>, <c>*-mini</c>, <c>claude-*-4.5</c>).</summary>
public static class Glob
{
    public static bool Matches(string pattern, string text) => Matches(pattern.AsSpan().Trim(), text.AsSpan());

    private static bool Matches(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        var star = pattern.IndexOf('*');
        if (star < 0)
        {
            return pattern.Equals(text, StringComparison.OrdinalIgnoreCase);
        }

        var head = pattern[..star];
        if (!text.StartsWith(head, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var rest = pattern[(star + 1)..];
        var remaining = text[head.Length..];
        if (rest.IsEmpty)
        {
            return true;
        }

        for (var i = 0; i <= remaining.Length; i++)
        {
            if (Matches(rest, remaining[i..]))
            {
                return true;
            }
        }

        return false;
    }
}
