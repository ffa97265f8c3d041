namespace Shepherd.Limits;

using Shepherd.Keys;

/// <summary>
/// The live counters of one virtual key, guarded by one lock so every check-and-reserve is a single atomic step.
/// </summary>
/// <remarks>
/// Requests per minute use an exact sliding log (a ring of the last N request times): with RPM N, never more than N
/// requests in any 60 s. Tokens per minute count in sixty one-second buckets (bounded memory at any rate); settlement corrects a reservation to the real
/// count. Money is <c>decimal</c> USD: spend per budget window, outstanding reservations, and the credit balance.
/// </remarks>
public sealed class KeyRuntime
{
    internal readonly object Gate = new();

    // Requests-per-minute log: times (UTC ticks) of the requests in the window, oldest at _requestHead.
    internal long[] RequestLog = [];
    internal int RequestHead;
    internal int RequestCount;

    // Tokens per minute: 60 one-second buckets (bounded memory at any request rate), each stamped with its second.
    internal readonly long[] TokenBucketSecond = new long[TokenBuckets];
    internal readonly long[] TokenBucket = new long[TokenBuckets];
    internal long TokenSum;

    internal const int TokenBuckets = 60;

    internal int InFlight;

    internal DateOnly Day;
    internal int Month;
    internal decimal SpentToday;
    internal decimal SpentThisMonth;
    internal decimal SpentTotal;

    /// <summary>Worst-case cost of the requests running now.</summary>
    internal decimal Reserved;

    /// <summary>Prepaid balance; null when the key is not credit-limited.</summary>
    internal decimal? Credit;

    // Spend settled since the ledger last saved it (one day's worth; see InMemoryLimiter.Settle).
    internal DateOnly UnsavedDay;
    internal decimal UnsavedSpend;
    internal decimal UnsavedCredit;

    /// <summary>Hands the spend settled since the last call to the ledger (which persists it) and resets it.</summary>
    /// <returns>False when there is nothing to save.</returns>
    public bool TakeUnsaved(out DateOnly day, out decimal spend, out decimal credit)
    {
        lock (Gate)
        {
            day = UnsavedDay;
            spend = UnsavedSpend;
            credit = UnsavedCredit;
            UnsavedSpend = 0m;
            UnsavedCredit = 0m;
            return spend != 0m || credit != 0m;
        }
    }

    /// <summary>
    /// Adds settled spend to what the ledger will save (one row per key and day). Must be called under <see cref="Gate"/>
    /// or from <see cref="AddUnsaved(string, DateOnly, decimal, bool, ISpendRecorder?)"/>.
    /// </summary>
    /// <returns>The previous day's unsaved spend when the day changed, to be handed to the recorder.</returns>
    internal SpendDelta? AddUnsavedLocked(string keyId, DateOnly today, decimal cost, bool debit)
    {
        SpendDelta? spilled = null;
        if (UnsavedDay != today)
        {
            if (UnsavedSpend != 0m || UnsavedCredit != 0m)
            {
                spilled = new SpendDelta(keyId, UnsavedDay, UnsavedSpend, UnsavedCredit);
            }

            UnsavedDay = today;
            UnsavedSpend = 0m;
            UnsavedCredit = 0m;
        }

        UnsavedSpend += cost;
        if (debit)
        {
            UnsavedCredit += cost;
        }

        return spilled;
    }

    /// <summary>Adds settled spend for the ledger to save (a limiter that keeps its counters elsewhere, e.g. Redis).</summary>
    public void AddUnsaved(string keyId, DateOnly today, decimal cost, bool debit, ISpendRecorder? spill)
    {
        if (cost == 0m)
        {
            return;
        }

        SpendDelta? spilled;
        lock (Gate)
        {
            spilled = AddUnsavedLocked(keyId, today, cost, debit);
        }

        if (spilled is { } delta)
        {
            spill?.Record(delta);
        }
    }

    /// <summary>Gives spend back after a failed save, so the next save includes it.</summary>
    public void ReturnUnsaved(DateOnly day, decimal spend, decimal credit)
    {
        lock (Gate)
        {
            if (UnsavedDay == day || (UnsavedSpend == 0m && UnsavedCredit == 0m))
            {
                UnsavedDay = day;
                UnsavedSpend += spend;
                UnsavedCredit += credit;
            }
        }
    }

    /// <summary>A consistent copy of the counters, for the admin API.</summary>
    public KeyRuntimeSnapshot Snapshot()
    {
        lock (Gate)
        {
            return new KeyRuntimeSnapshot(InFlight, RequestCount, TokenSum, Day, SpentToday, SpentThisMonth, SpentTotal, Reserved, Credit);
        }
    }

    /// <summary>Sets the persisted spend and balance (at start-up or after a reload).</summary>
    public void Restore(DateOnly day, decimal today, decimal month, decimal total, decimal? credit)
    {
        lock (Gate)
        {
            Day = day;
            Month = BudgetCalendar.MonthIndex(day);
            SpentToday = today;
            SpentThisMonth = month;
            SpentTotal = total;
            Credit = credit;
        }
    }

    /// <summary>Adds to (or starts) the credit balance.</summary>
    public decimal TopUp(decimal amount)
    {
        lock (Gate)
        {
            Credit = (Credit ?? 0m) + amount;
            return Credit.Value;
        }
    }

    /// <summary>Sets the balance to what the store holds (another instance changed the key).</summary>
    public void SetCredit(decimal? balance)
    {
        lock (Gate)
        {
            Credit = balance;
        }
    }

    /// <summary>Removes the credit limit or starts it at a balance (admin update).</summary>
    public void SetCreditLimited(decimal? balance)
    {
        lock (Gate)
        {
            Credit = balance is null ? null : Credit ?? balance;
        }
    }
}

/// <summary>A key's live counters at one moment.</summary>
public readonly record struct KeyRuntimeSnapshot(
    int InFlight,
    int RequestsLastMinute,
    long TokensLastMinute,
    DateOnly Day,
    decimal SpentToday,
    decimal SpentThisMonth,
    decimal SpentTotal,
    decimal Reserved,
    decimal? CreditBalance);
