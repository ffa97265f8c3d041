namespace Shepherd.Testing;

using System.Diagnostics;

/// <summary>
/// Waits (really) until something that happens in the background holds: a message from another instance, a row
/// written behind, another process's state. The bound only ends a test that would otherwise hang, so it is generous
/// (the suite runs in parallel on few cores); no outcome depends on how long the wait took.
/// </summary>
public static class Eventually
{
    public static Task HoldsAsync(Func<bool> condition, string what, TimeSpan within, Func<string>? diagnostics = null) =>
        HoldsAsync(() => Task.FromResult(condition()), what, within, diagnostics);

    /// <exception cref="TimeoutException">Still not true after <paramref name="within"/>; says what, and the diagnostics.</exception>
    public static async Task HoldsAsync(Func<Task<bool>> condition, string what, TimeSpan within, Func<string>? diagnostics = null)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > within)
            {
                throw new TimeoutException($"Not within {within.TotalSeconds:0.#} s: {what}{(diagnostics is null ? string.Empty : "\n" + diagnostics())}");
            }

            await Task.Delay(10);
        }
    }
}
