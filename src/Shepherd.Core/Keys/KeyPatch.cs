namespace Shepherd.Keys;

/// <summary>A value that may be absent (not given) as opposed to given as null: the shape of a JSON merge patch.</summary>
public readonly record struct Optional<T>(bool IsSet, T Value)
{
    public static implicit operator Optional<T>(T value) => new(true, value);

    public T Or(T fallback) => IsSet ? Value : fallback;
}

/// <summary>The settings of a key as the admin API receives them: for create, every field; for update, only those given.</summary>
public sealed record KeyPatch
{
    public Optional<string?> Name { get; init; }

    public Optional<string?> Team { get; init; }

    public Optional<DateTimeOffset?> ExpiresAt { get; init; }

    public Optional<bool> Enabled { get; init; }

    public Optional<IReadOnlyList<string>?> AllowedModels { get; init; }

    public Optional<IReadOnlyList<string>?> IpAllowlist { get; init; }

    public Optional<int?> Rpm { get; init; }

    public Optional<int?> Tpm { get; init; }

    public Optional<int?> MaxParallel { get; init; }

    public Optional<decimal?> DailyBudget { get; init; }

    public Optional<decimal?> MonthlyBudget { get; init; }

    public Optional<decimal?> TotalBudget { get; init; }

    public Optional<decimal?> CreditBalance { get; init; }

    public Optional<IReadOnlyDictionary<string, string>?> Metadata { get; init; }
}

/// <summary>A problem with one field of an admin request.</summary>
public sealed record FieldError(string Field, string Message)
{
    public override string ToString() => $"{Field}: {Message}";
}

/// <summary>Thrown by <see cref="KeyService"/> for invalid admin input; the admin API turns it into a 400 naming the field.</summary>
public sealed class KeyValidationException(IReadOnlyList<FieldError> errors)
    : Exception(string.Join("; ", errors))
{
    public IReadOnlyList<FieldError> Errors { get; } = errors;
}
