namespace Shepherd.Storage;

/// <summary>The database behind the stores, as the host sees it: migrated before the gateway listens, pinged by readiness.</summary>
public interface IStorageDatabase
{
    /// <summary><c>sqlite</c> or <c>postgres</c>.</summary>
    string Kind { get; }

    /// <summary>A database shared by several instances (its outage is a degradation, not this instance's failure).</summary>
    bool IsShared { get; }

    /// <summary>Applies every migration not yet applied. Safe to run on every start, by several instances at once.</summary>
    Task MigrateAsync(CancellationToken cancellationToken);

    /// <summary>Whether the database answers now.</summary>
    Task<bool> PingAsync(CancellationToken cancellationToken);
}
