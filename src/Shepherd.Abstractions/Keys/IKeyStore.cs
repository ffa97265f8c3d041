namespace Shepherd.Keys;

/// <summary>Durable virtual keys. Used at start-up and by the admin API; never on the request path.</summary>
public interface IKeyStore
{
    Task<IReadOnlyList<VirtualKeyRecord>> LoadAllAsync(CancellationToken cancellationToken);

    /// <summary>One key as stored now, or null (another instance changed it: reload it).</summary>
    Task<VirtualKeyRecord?> GetAsync(string id, CancellationToken cancellationToken);

    Task InsertAsync(VirtualKeyRecord key, CancellationToken cancellationToken);

    Task UpdateAsync(VirtualKeyRecord key, CancellationToken cancellationToken);

    /// <summary>Adds <paramref name="amount"/> to the credit balance (starting one if the key had none); returns the new balance.</summary>
    Task<decimal> TopUpAsync(string keyId, decimal amount, CancellationToken cancellationToken);
}

/// <summary>Durable spend counters per key and calendar window, written behind the request path in batches.</summary>
public interface ISpendStore
{
    /// <summary>Spend of every key for the given day and month (calendar windows in the configured time zone).</summary>
    Task<IReadOnlyList<KeySpend>> LoadAsync(DateOnly day, CancellationToken cancellationToken);

    /// <summary>Adds each delta to its key's day, month and total and, when asked, takes it off the credit balance — one transaction.</summary>
    Task ApplyAsync(IReadOnlyList<SpendDelta> deltas, CancellationToken cancellationToken);
}
