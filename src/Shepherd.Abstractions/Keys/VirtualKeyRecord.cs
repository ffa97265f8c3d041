namespace Shepherd.Keys;

/// <summary>A virtual key as stored: never the key itself, only its SHA-256 digest and a short display form.</summary>
public sealed record VirtualKeyRecord
{
    /// <summary>Stable public id (<c>key_…</c>), used by the admin API, logs and usage records.</summary>
    public required string Id { get; init; }

    public required string Name { get; init; }

    /// <summary>Owner or team tag, for grouping spend.</summary>
    public string? Team { get; init; }

    /// <summary>Lower-case hex SHA-256 of the full key.</summary>
    public required string Hash { get; init; }

    /// <summary>What the key looks like, for people: <c>sk-shp-AbCd…wxyz</c>.</summary>
    public required string Display { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    public bool Enabled { get; init; } = true;

    public DateTimeOffset? RevokedAt { get; init; }

    /// <summary>Model names, aliases or <c>*</c> wildcards the key may call; empty means every model.</summary>
    public IReadOnlyList<string> AllowedModels { get; init; } = [];

    /// <summary>Client networks (CIDR or single address) the key may be used from; empty means anywhere.</summary>
    public IReadOnlyList<string> IpAllowlist { get; init; } = [];

    public int? Rpm { get; init; }

    public int? Tpm { get; init; }

    public int? MaxParallel { get; init; }

    public decimal? DailyBudget { get; init; }

    public decimal? MonthlyBudget { get; init; }

    public decimal? TotalBudget { get; init; }

    /// <summary>Prepaid balance in USD; null means the key is not credit-limited.</summary>
    public decimal? CreditBalance { get; init; }

    /// <summary>Free-form labels (owner e-mail, project, …).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();
}

/// <summary>Spend of one key in the current windows, as persisted.</summary>
public sealed record KeySpend(string KeyId, decimal Today, decimal ThisMonth, decimal Total);

/// <summary>Money spent by a key on one day: added to its day, month and total, and <paramref name="Credit"/> taken off its balance.</summary>
public readonly record struct SpendDelta(string KeyId, DateOnly Day, decimal Amount, decimal Credit);
