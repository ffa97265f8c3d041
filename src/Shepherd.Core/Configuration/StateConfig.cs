namespace Shepherd.Configuration;

using System.Data.Common;

/// <summary>
/// Where the state several instances must agree on lives: limits and budgets, breakers, upstream keys taken out, and
/// key changes. Without <see cref="Redis"/> it stays in this process (one instance). See docs/scale-out.md.
/// </summary>
public sealed record StateConfig
{
    /// <summary><c>redis://[user:password@]host:port[/db]</c> (<c>rediss://</c> for TLS) or a StackExchange.Redis
    /// configuration string (<c>host:port,password=…</c>). Null: in-memory state, one instance.</summary>
    public string? Redis { get; init; }

    /// <summary>When Redis does not answer: <c>open</c> (limits fall back to this instance's own counters) or
    /// <c>closed</c> (limited keys are refused with 503 until Redis answers).</summary>
    public string OnFailure { get; init; } = "open";

    /// <summary>The prefix of every Redis key and channel (several gateways may share one Redis with different prefixes).</summary>
    public string Prefix { get; init; } = "shp";

    public bool FailOpen => !string.Equals(OnFailure, "closed", StringComparison.OrdinalIgnoreCase);
}

/// <summary>The <c>storage</c> setting: which database, and where.</summary>
public static class StorageUrl
{
    /// <summary><c>postgres://…</c>, <c>postgresql://…</c> or an Npgsql connection string (<c>Host=…;Database=…</c>).</summary>
    public static bool IsPostgres(string storage) =>
        storage.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) ||
        storage.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase) ||
        (!storage.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase) && storage.Contains('=', StringComparison.Ordinal));

    public static bool IsSqlite(string storage) => storage.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase);

    /// <summary>The problem with a storage setting, or null when it is usable.</summary>
    public static string? Problem(string storage)
    {
        if (IsSqlite(storage))
        {
            return storage.Length > "sqlite:".Length ? null : "expected sqlite:PATH (e.g. sqlite:./shepherd.db)";
        }

        if (storage.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || storage.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
        {
            return Uri.TryCreate(storage, UriKind.Absolute, out var uri) && !string.IsNullOrEmpty(uri.Host) && uri.AbsolutePath.Trim('/').Length > 0
                ? null
                : "expected postgres://user:password@host:port/database";
        }

        if (IsPostgres(storage))
        {
            try
            {
                var builder = new DbConnectionStringBuilder { ConnectionString = storage };
                return builder.ContainsKey("host") || builder.ContainsKey("server")
                    ? null
                    : "an Npgsql connection string needs Host=… (e.g. Host=db;Username=shepherd;Password=…;Database=shepherd)";
            }
            catch (ArgumentException)
            {
                return "not a valid connection string (expected Key=Value;Key=Value)";
            }
        }

        return "expected sqlite:PATH, postgres://user:password@host:port/database or an Npgsql connection string";
    }
}

/// <summary>Checks <c>state</c>.</summary>
internal static class StateConfigValidator
{
    public static void Validate(StateConfig state, List<ConfigProblem> problems)
    {
        if (state.OnFailure is not ("open" or "closed"))
        {
            problems.Add(new ConfigProblem("state.on_failure", $"'{state.OnFailure}' is not one of open, closed"));
        }

        if (string.IsNullOrWhiteSpace(state.Prefix) || state.Prefix.Length > 64 || state.Prefix.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '{' or '}'))
        {
            problems.Add(new ConfigProblem("state.prefix", "must be 1 to 64 characters without white space or braces"));
        }

        if (state.Redis is { } redis)
        {
            if (string.IsNullOrWhiteSpace(redis))
            {
                problems.Add(new ConfigProblem("state.redis", "must not be empty (leave it out for in-memory state)"));
            }
            else if (redis.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) || redis.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase))
            {
                if (!Uri.TryCreate(redis, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host) ||
                    (uri.AbsolutePath.Trim('/') is { Length: > 0 } db && !int.TryParse(db, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _)))
                {
                    problems.Add(new ConfigProblem("state.redis", $"'{redis}' is not a Redis URL (expected redis://host:port or redis://user:password@host:port/db)"));
                }
            }
            else if (redis.Contains("://", StringComparison.Ordinal) || redis.Any(char.IsWhiteSpace))
            {
                problems.Add(new ConfigProblem("state.redis", "expected redis://host:port, rediss://host:port or a StackExchange.Redis configuration string (host:port,password=…)"));
            }
        }
    }
}
