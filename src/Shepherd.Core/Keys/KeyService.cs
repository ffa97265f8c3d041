namespace Shepherd.Keys;

using System.Security.Cryptography;
using Shepherd.Limits;
using Shepherd.Routing;
using Shepherd.Security;

/// <summary>
/// Creates, changes, revokes and tops up virtual keys: validates the input, writes the store, then updates the
/// in-memory registry so the very next request sees the change. With several instances (<see cref="IKeySharing"/>),
/// it then tells the others, which reload the key from the store (<see cref="ReloadAsync"/>).
/// </summary>
public sealed class KeyService
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    private readonly IKeyStore _store;
    private readonly ISpendStore _spend;
    private readonly KeyRegistry _registry;
    private readonly ModelCatalog _catalog;
    private readonly TimeProvider _time;
    private readonly BudgetCalendar _calendar;
    private readonly SemaphoreSlim _writes = new(1, 1);
    private readonly string[] _virtualModels;
    private readonly IKeySharing? _sharing;

    /// <param name="router">The virtual models, whose names <c>allowed_models</c> may name too.</param>
    /// <param name="sharing">Shared counters and change notices when several instances run (Redis).</param>
    public KeyService(IKeyStore store, ISpendStore spend, KeyRegistry registry, ModelCatalog catalog, TimeProvider time, BudgetCalendar calendar, Routing.Rules.VirtualModelRouter? router = null, IKeySharing? sharing = null)
    {
        _sharing = sharing;
        _virtualModels = router?.Names.ToArray() ?? [];
        _store = store;
        _spend = spend;
        _registry = registry;
        _catalog = catalog;
        _time = time;
        _calendar = calendar;
    }

    public KeyRegistry Registry => _registry;

    /// <summary>Loads every key and its spend into memory (start-up).</summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        var today = _calendar.Today(_time.GetUtcNow());
        var spend = (await _spend.LoadAsync(today, cancellationToken)).ToDictionary(s => s.KeyId, StringComparer.Ordinal);
        foreach (var record in await _store.LoadAllAsync(cancellationToken))
        {
            var runtime = new KeyRuntime();
            var s = spend.GetValueOrDefault(record.Id);
            runtime.Restore(today, s?.Today ?? 0m, s?.ThisMonth ?? 0m, s?.Total ?? 0m, record.CreditBalance);

            // A pattern that no longer matches (the model was removed from the config) simply allows nothing more.
            var entry = new KeyEntry(record, ModelAccess.Resolve(record.AllowedModels, _catalog, virtualModels: _virtualModels), runtime);
            _registry.Put(entry);
            if (_sharing is not null && entry.HasLimits)
            {
                await _sharing.SeedAsync(entry, s, cancellationToken);
            }
        }
    }

    /// <returns>The new key and its plaintext, shown exactly once.</returns>
    public async Task<(KeyEntry Entry, string Secret)> CreateAsync(KeyPatch patch, CancellationToken cancellationToken)
    {
        var errors = new List<FieldError>();
        if (!patch.Name.IsSet || string.IsNullOrWhiteSpace(patch.Name.Value))
        {
            errors.Add(new FieldError("name", "is required"));
        }

        var now = _time.GetUtcNow();
        var secret = KeyRegistry.KeyPrefix + RandomNumberGenerator.GetString(Alphabet, 43);
        var record = Apply(new VirtualKeyRecord
        {
            Id = "key_" + RandomNumberGenerator.GetString(Alphabet, 16),
            Name = patch.Name.Value?.Trim() ?? string.Empty,
            Hash = KeyRegistry.DigestHex(secret),
            Display = $"{KeyRegistry.KeyPrefix}{secret[7..11]}…{secret[^4..]}",
            CreatedAt = now,
        }, patch, errors, creating: true);
        var access = Check(record, errors);
        if (errors.Count > 0)
        {
            throw new KeyValidationException(errors);
        }

        await _writes.WaitAsync(cancellationToken);
        try
        {
            await _store.InsertAsync(record, cancellationToken);
            var runtime = new KeyRuntime();
            runtime.Restore(_calendar.Today(now), 0m, 0m, 0m, record.CreditBalance);
            var entry = new KeyEntry(record, access, runtime);
            _registry.Put(entry);
            if (_sharing is not null)
            {
                await _sharing.ResetCreditAsync(entry, record.CreditBalance, cancellationToken);
                await _sharing.PublishChangedAsync(entry.Id, cancellationToken);
            }

            return (entry, secret);
        }
        finally
        {
            _writes.Release();
        }
    }

    public async Task<KeyEntry> UpdateAsync(string id, KeyPatch patch, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            var current = Find(id);
            var errors = new List<FieldError>();
            if (patch.Name.IsSet && string.IsNullOrWhiteSpace(patch.Name.Value))
            {
                errors.Add(new FieldError("name", "must not be empty"));
            }

            if (patch.CreditBalance.IsSet && patch.CreditBalance.Value is not null && current.Record.CreditBalance is not null)
            {
                errors.Add(new FieldError("credit_balance", "the key already has a balance: use the top-up endpoint to change it"));
            }

            var record = Apply(current.Record, patch, errors, creating: false);
            var access = Check(record, errors);
            if (errors.Count > 0)
            {
                throw new KeyValidationException(errors);
            }

            await _store.UpdateAsync(record, cancellationToken);
            if (patch.CreditBalance.IsSet)
            {
                current.Runtime.SetCreditLimited(record.CreditBalance);
            }

            var entry = new KeyEntry(record, access, current.Runtime);
            _registry.Put(entry);
            if (_sharing is not null)
            {
                if (patch.CreditBalance.IsSet)
                {
                    await _sharing.ResetCreditAsync(entry, record.CreditBalance, cancellationToken);
                }

                if (entry.HasLimits && !current.HasLimits)
                {
                    // Limits from now on: the shared counters start from the persisted spend.
                    await _sharing.SeedAsync(entry, await LoadSpendAsync(id, cancellationToken), cancellationToken);
                }

                await _sharing.PublishChangedAsync(entry.Id, cancellationToken);
            }

            return entry;
        }
        finally
        {
            _writes.Release();
        }
    }

    public async Task<KeyEntry> RevokeAsync(string id, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            var current = Find(id);
            if (current.Record.RevokedAt is not null)
            {
                return current;
            }

            var record = current.Record with { RevokedAt = _time.GetUtcNow(), Enabled = false };
            await _store.UpdateAsync(record, cancellationToken);
            var entry = new KeyEntry(record, current.Models, current.Runtime);
            _registry.Put(entry);
            if (_sharing is not null)
            {
                await _sharing.PublishChangedAsync(entry.Id, cancellationToken);
            }

            return entry;
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <returns>The new balance.</returns>
    public async Task<decimal> TopUpAsync(string id, decimal amount, CancellationToken cancellationToken)
    {
        if (amount <= 0m || amount > 1_000_000_000m)
        {
            throw new KeyValidationException([new FieldError("amount", "must be a positive amount of USD (at most 1,000,000,000)")]);
        }

        await _writes.WaitAsync(cancellationToken);
        try
        {
            var current = Find(id);
            if (_sharing is not null && current.Record.CreditBalance is not null)
            {
                // The shared balance must exist before it is added to (Redis may have lost it): seeded from the store first.
                await _sharing.SeedAsync(current, await LoadSpendAsync(id, cancellationToken), cancellationToken);
            }

            await _store.TopUpAsync(id, amount, cancellationToken);
            var balance = current.Runtime.TopUp(amount);
            if (current.Record.CreditBalance is null)
            {
                current = new KeyEntry(current.Record with { CreditBalance = balance }, current.Models, current.Runtime);
                _registry.Put(current);
            }

            if (_sharing is not null)
            {
                balance = await _sharing.TopUpAsync(current, amount, cancellationToken) ?? balance;
                await _sharing.PublishChangedAsync(id, cancellationToken);
            }

            return balance;
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// Reloads one key from the store: another instance changed it (<see cref="IKeySharing.PublishChangedAsync"/>).
    /// The live counters of a known key are kept; its local balance (the fallback when shared state is down) follows the store.
    /// </summary>
    public async Task ReloadAsync(string id, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            if (await _store.GetAsync(id, cancellationToken) is { } record)
            {
                await PutLoadedAsync(record, null, cancellationToken);
            }
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>Reloads every key from the store (after shared state was unreachable, change notices may have been missed).</summary>
    public async Task ReloadAllAsync(CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            var today = _calendar.Today(_time.GetUtcNow());
            Dictionary<string, KeySpend>? spend = null;
            foreach (var record in await _store.LoadAllAsync(cancellationToken))
            {
                if (!_registry.TryGet(record.Id, out _))
                {
                    spend ??= (await _spend.LoadAsync(today, cancellationToken)).ToDictionary(s => s.KeyId, StringComparer.Ordinal);
                }

                await PutLoadedAsync(record, spend, cancellationToken);
            }
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>Seeds the shared counters of every key with limits (after shared state came back, maybe empty).</summary>
    public async Task SeedAllAsync(CancellationToken cancellationToken)
    {
        if (_sharing is null)
        {
            return;
        }

        var spend = (await _spend.LoadAsync(_calendar.Today(_time.GetUtcNow()), cancellationToken)).ToDictionary(s => s.KeyId, StringComparer.Ordinal);
        foreach (var entry in _registry.All.Where(e => e.HasLimits))
        {
            await _sharing.SeedAsync(entry, spend.GetValueOrDefault(entry.Id), cancellationToken);
        }
    }

    /// <summary>A key's live counters: across every instance when they are shared, else this instance's.</summary>
    public async Task<KeyRuntimeSnapshot> LiveAsync(KeyEntry entry, CancellationToken cancellationToken)
    {
        var local = entry.Runtime.Snapshot();
        return _sharing is not null && entry.HasLimits && await _sharing.ReadLiveAsync(entry, cancellationToken) is { } shared ? shared : local;
    }

    private async Task PutLoadedAsync(VirtualKeyRecord record, Dictionary<string, KeySpend>? spend, CancellationToken cancellationToken)
    {
        var access = ModelAccess.Resolve(record.AllowedModels, _catalog, virtualModels: _virtualModels);
        if (_registry.TryGet(record.Id, out var current))
        {
            current.Runtime.SetCredit(record.CreditBalance);
            _registry.Put(new KeyEntry(record, access, current.Runtime));
            return;
        }

        var today = _calendar.Today(_time.GetUtcNow());
        var s = spend is null ? await LoadSpendAsync(record.Id, cancellationToken) : spend.GetValueOrDefault(record.Id);
        var runtime = new KeyRuntime();
        runtime.Restore(today, s?.Today ?? 0m, s?.ThisMonth ?? 0m, s?.Total ?? 0m, record.CreditBalance);
        _registry.Put(new KeyEntry(record, access, runtime));
    }

    private async Task<KeySpend?> LoadSpendAsync(string id, CancellationToken cancellationToken) =>
        (await _spend.LoadAsync(_calendar.Today(_time.GetUtcNow()), cancellationToken)).FirstOrDefault(s => s.KeyId == id);

    private KeyEntry Find(string id) =>
        _registry.TryGet(id, out var entry) ? entry : throw new KeyNotFoundException($"No key with id '{id}'.");

    private ModelAccess Check(VirtualKeyRecord record, List<FieldError> errors)
    {
        var unmatched = new List<string>();
        var access = ModelAccess.Resolve(record.AllowedModels, _catalog, unmatched, _virtualModels);
        foreach (var pattern in unmatched)
        {
            errors.Add(new FieldError("allowed_models", $"'{pattern}' matches no configured model, alias or router"));
        }

        for (var i = 0; i < record.IpAllowlist.Count; i++)
        {
            if (!KeyEntry.IsValidNetwork(record.IpAllowlist[i]))
            {
                errors.Add(new FieldError($"ip_allowlist[{i}]", $"'{record.IpAllowlist[i]}' is not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32; host bits must be zero)"));
            }
        }

        return access;
    }

    private static VirtualKeyRecord Apply(VirtualKeyRecord record, KeyPatch patch, List<FieldError> errors, bool creating)
    {
        static int? Positive(Optional<int?> value, int? current, string field, List<FieldError> errors, int max = 100_000_000)
        {
            if (!value.IsSet)
            {
                return current;
            }

            if (value.Value is { } v && (v < 1 || v > max))
            {
                errors.Add(new FieldError(field, $"must be between 1 and {max}, or null for no limit"));
            }

            return value.Value;
        }

        static decimal? Money(Optional<decimal?> value, decimal? current, string field, List<FieldError> errors)
        {
            if (!value.IsSet)
            {
                return current;
            }

            if (value.Value is { } v && (v < 0m || v > 1_000_000_000m))
            {
                errors.Add(new FieldError(field, "must be a non-negative amount of USD (at most 1,000,000,000), or null for no limit"));
            }

            return value.Value;
        }

        var name = patch.Name.IsSet ? patch.Name.Value?.Trim() ?? string.Empty : record.Name;
        if (name.Length > 200)
        {
            errors.Add(new FieldError("name", "must be at most 200 characters"));
        }

        var team = patch.Team.IsSet ? patch.Team.Value?.Trim() : record.Team;
        if (team is { Length: > 200 })
        {
            errors.Add(new FieldError("team", "must be at most 200 characters"));
        }

        var models = patch.AllowedModels.IsSet ? patch.AllowedModels.Value ?? [] : record.AllowedModels;
        if (models.Any(string.IsNullOrWhiteSpace))
        {
            errors.Add(new FieldError("allowed_models", "must not contain empty patterns"));
        }

        var rpm = Positive(patch.Rpm, record.Rpm, "rpm", errors, 1_000_000);
        var metadata = patch.Metadata.IsSet ? patch.Metadata.Value ?? new Dictionary<string, string>() : record.Metadata;
        if (metadata.Count > 64)
        {
            errors.Add(new FieldError("metadata", "may hold at most 64 entries"));
        }

        var expires = patch.ExpiresAt.IsSet ? patch.ExpiresAt.Value : record.ExpiresAt;
        if (creating && expires is { } e && e <= record.CreatedAt)
        {
            errors.Add(new FieldError("expires_at", "must be in the future"));
        }

        return record with
        {
            Name = name,
            Team = string.IsNullOrEmpty(team) ? null : team,
            ExpiresAt = expires,
            Enabled = patch.Enabled.Or(record.Enabled),
            AllowedModels = models.Select(m => m.Trim()).ToArray(),
            IpAllowlist = patch.IpAllowlist.IsSet ? (patch.IpAllowlist.Value ?? []).Select(i => i.Trim()).ToArray() : record.IpAllowlist,
            Rpm = rpm,
            Tpm = Positive(patch.Tpm, record.Tpm, "tpm", errors, int.MaxValue),
            MaxParallel = Positive(patch.MaxParallel, record.MaxParallel, "max_parallel", errors, 1_000_000),
            DailyBudget = Money(patch.DailyBudget, record.DailyBudget, "daily_budget", errors),
            MonthlyBudget = Money(patch.MonthlyBudget, record.MonthlyBudget, "monthly_budget", errors),
            TotalBudget = Money(patch.TotalBudget, record.TotalBudget, "total_budget", errors),
            CreditBalance = Money(patch.CreditBalance, record.CreditBalance, "credit_balance", errors),
            Metadata = metadata,
        };
    }
}
