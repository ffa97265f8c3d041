namespace Shepherd.Limits;

/// <summary>
/// The calendar day and month that budgets count in: UTC by default, or a configured time zone. Caches the next
/// day boundary so the common case is one comparison.
/// </summary>
public sealed class BudgetCalendar
{
    private readonly TimeZoneInfo _zone;
    private DayWindow? _current;

    public BudgetCalendar(TimeZoneInfo zone)
    {
        _zone = zone;
    }

    public static BudgetCalendar Utc { get; } = new(TimeZoneInfo.Utc);

    public TimeZoneInfo Zone => _zone;

    /// <summary>The budget day of <paramref name="now"/>.</summary>
    public DateOnly Today(DateTimeOffset now)
    {
        // One immutable window read atomically: valid only while "now" is inside it (clocks may also go back).
        var window = Volatile.Read(ref _current);
        var ticks = now.UtcTicks;
        if (window is not null && ticks >= window.StartTicks && ticks < window.EndTicks)
        {
            return window.Day;
        }

        var day = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(now, _zone).DateTime);
        Volatile.Write(ref _current, new DayWindow(day, StartOf(day).UtcTicks, NextDayStart(day).UtcTicks));
        return day;
    }

    private sealed record DayWindow(DateOnly Day, long StartTicks, long EndTicks);

    /// <summary>When the budget day containing <paramref name="day"/> ends.</summary>
    public DateTimeOffset NextDayStart(DateOnly day) => StartOf(day.AddDays(1));

    /// <summary>When the budget month containing <paramref name="day"/> ends.</summary>
    public DateTimeOffset NextMonthStart(DateOnly day) => StartOf(new DateOnly(day.Year, day.Month, 1).AddMonths(1));

    public static int MonthIndex(DateOnly day) => (day.Year * 12) + day.Month - 1;

    private DateTimeOffset StartOf(DateOnly day)
    {
        var local = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Unspecified);
        return new DateTimeOffset(local, _zone.GetUtcOffset(local));
    }
}
