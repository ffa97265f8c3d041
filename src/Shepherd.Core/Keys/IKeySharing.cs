namespace Shepherd.Keys;

using Shepherd.Limits;

/// <summary>
/// What several instances share about virtual keys, beside the store: the live counters (spend, credit) and the news
/// that a key changed. Implemented over Redis; absent when one instance runs alone.
/// </summary>
/// <remarks>Implementations never throw because the shared state is unavailable: they log, report the degradation,
/// and the caller carries on with what the store holds (the store is the truth for keys).</remarks>
public interface IKeySharing
{
    /// <summary>Puts a key's persisted spend and balance into the shared counters, unless they are there already.</summary>
    Task SeedAsync(KeyEntry key, KeySpend? spend, CancellationToken cancellationToken);

    /// <summary>An update set the key's credit limit to <paramref name="balance"/> or removed it (null): replace the shared balance.</summary>
    Task ResetCreditAsync(KeyEntry key, decimal? balance, CancellationToken cancellationToken);

    /// <summary>Adds credit to the shared balance (after the store did); the new shared balance, or null when unavailable.</summary>
    Task<decimal?> TopUpAsync(KeyEntry key, decimal amount, CancellationToken cancellationToken);

    /// <summary>The key's live counters across every instance, or null when unavailable.</summary>
    Task<KeyRuntimeSnapshot?> ReadLiveAsync(KeyEntry key, CancellationToken cancellationToken);

    /// <summary>Tells every instance that the key changed in the store, so each reloads it.</summary>
    Task PublishChangedAsync(string keyId, CancellationToken cancellationToken);
}
