namespace Shepherd.Routing.Rules;

using System.Globalization;
using Shepherd.Configuration;

/// <summary>One condition of a rule, compiled from <see cref="RouteConditionConfig"/>.</summary>
/// <remarks><see cref="Matches"/> runs for every routed request and allocates nothing; <see cref="Explain"/> builds the
/// human reason only when a decision is logged or explained.</remarks>
public abstract class RouteCondition
{
    /// <summary>Evaluation order within a rule: cheap checks first, tokenising last.</summary>
    internal abstract int Cost { get; }

    public abstract bool Matches(RequestFeatures features);

    /// <summary>Why the condition holds (<paramref name="matched"/>) or does not.</summary>
    public abstract string Explain(RequestFeatures features, bool matched);

    /// <summary>The conditions of one <c>when</c>, cheapest first.</summary>
    public static RouteCondition[] Compile(RouteConditionConfig? when)
    {
        if (when is null)
        {
            return [];
        }

        var conditions = new List<RouteCondition>();
        if (when.HasImages is { } images)
        {
            conditions.Add(new ImagesCondition(images));
        }

        if (when.HasTools is { } tools)
        {
            conditions.Add(new ToolsCondition(tools));
        }

        if (when.ResponseFormat is { Count: > 0 } formats)
        {
            conditions.Add(new ResponseFormatCondition([.. formats]));
        }

        if (when.MaxLatencyBudgetMs is { } budget)
        {
            conditions.Add(new LatencyBudgetCondition(budget));
        }

        foreach (var (key, value) in when.Tags ?? [])
        {
            conditions.Add(new TagCondition(key.Trim(), value.Trim()));
        }

        if (when.Priority is { } priority)
        {
            conditions.Add(new TagCondition("priority", priority.Trim()));
        }

        if (when.Keywords is { Count: > 0 } keywords)
        {
            conditions.Add(new KeywordsCondition([.. keywords]));
        }

        if (when.MinPromptTokens is not null || when.MaxPromptTokens is not null)
        {
            conditions.Add(new PromptTokensCondition(when.MinPromptTokens, when.MaxPromptTokens));
        }

        return [.. conditions.OrderBy(c => c.Cost)];
    }

    private static string Plural(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count.ToString(CultureInfo.InvariantCulture)} {noun}s";

    private sealed class ImagesCondition(bool expected) : RouteCondition
    {
        internal override int Cost => 0;

        public override bool Matches(RequestFeatures features) => features.HasImages == expected;

        public override string Explain(RequestFeatures features, bool matched) => features.HasImages ? "has images" : "no images";
    }

    private sealed class ToolsCondition(bool expected) : RouteCondition
    {
        internal override int Cost => 0;

        public override bool Matches(RequestFeatures features) => features.ToolCount > 0 == expected;

        public override string Explain(RequestFeatures features, bool matched) =>
            features.ToolCount > 0 ? $"offers {Plural(features.ToolCount, "tool")}" : "no tools";
    }

    private sealed class ResponseFormatCondition(string[] formats) : RouteCondition
    {
        internal override int Cost => 1;

        public override bool Matches(RequestFeatures features) =>
            features.ResponseFormatType is { } type && Array.IndexOf(formats, type) >= 0;

        public override string Explain(RequestFeatures features, bool matched) => matched
            ? $"response_format {features.ResponseFormatType}"
            : $"response_format {features.ResponseFormatType ?? "not set"}, not {string.Join(" or ", formats)}";
    }

    private sealed class LatencyBudgetCondition(int maxMs) : RouteCondition
    {
        internal override int Cost => 1;

        public override bool Matches(RequestFeatures features) => features.Hints.LatencyBudgetMs is { } budget && budget <= maxMs;

        public override string Explain(RequestFeatures features, bool matched) => features.Hints.LatencyBudgetMs switch
        {
            null => $"no latency budget ({RequestHints.LatencyBudgetHeader})",
            { } budget when matched => $"latency budget {budget} ms <= {maxMs} ms",
            { } budget => $"latency budget {budget} ms > {maxMs} ms",
        };
    }

    private sealed class TagCondition(string key, string value) : RouteCondition
    {
        internal override int Cost => 2;

        public override bool Matches(RequestFeatures features) => features.MatchTag(key, value, out var equal) != TagSource.None && equal;

        public override string Explain(RequestFeatures features, bool matched)
        {
            var (actual, source) = features.DescribeTag(key);
            var from = source == TagSource.Header ? "header" : "metadata";
            return source == TagSource.None
                ? $"no tag {key}"
                : matched ? $"{from} tag {key}={actual}" : $"{from} tag {key}={actual}, not {value}";
        }
    }

    private sealed class KeywordsCondition(string[] keywords) : RouteCondition
    {
        internal override int Cost => 3;

        public override bool Matches(RequestFeatures features) => Find(features.LastUserText) is not null;

        public override string Explain(RequestFeatures features, bool matched) =>
            Find(features.LastUserText) is { } keyword
                ? $"keyword '{keyword}' in the last user message"
                : $"none of '{string.Join("', '", keywords)}' in the last user message";

        private string? Find(string text)
        {
            foreach (var keyword in keywords)
            {
                if (text.Contains(keyword, StringComparison.OrdinalIgnoreCase))
                {
                    return keyword;
                }
            }

            return null;
        }
    }

    private sealed class PromptTokensCondition(int? min, int? max) : RouteCondition
    {
        internal override int Cost => 4;

        public override bool Matches(RequestFeatures features)
        {
            var tokens = features.PromptTokens;
            return tokens >= (min ?? 0) && tokens <= (max ?? int.MaxValue);
        }

        public override string Explain(RequestFeatures features, bool matched)
        {
            var tokens = features.PromptTokens;
            if (min is { } low && tokens < low)
            {
                return $"prompt ~{tokens} tokens < min_prompt_tokens {low}";
            }

            if (max is { } high && tokens > high)
            {
                return $"prompt ~{tokens} tokens > max_prompt_tokens {high}";
            }

            return (min, max) switch
            {
                ({ } a, { } b) => $"prompt ~{tokens} tokens within {a}..{b}",
                ({ } a, null) => $"prompt ~{tokens} tokens >= {a}",
                _ => $"prompt ~{tokens} tokens <= {max}",
            };
        }
    }
}
