namespace Shepherd.Cli.Commands.Bench;

using System.Globalization;
using Spectre.Console;

/// <summary>
/// Shows a run's progress: a live Spectre bar on a terminal; plain lines every few seconds when the output is
/// redirected (a log file or CI has no use for redrawn bars).
/// </summary>
internal static class BenchProgress
{
    private static readonly TimeSpan PlainInterval = TimeSpan.FromSeconds(2);

    public static async Task<BenchRun> RunAsync(BenchRunner runner, BenchSettings settings, IAnsiConsole console, TextWriter output, bool live, CancellationToken cancellationToken)
    {
        var run = runner.RunAsync(cancellationToken);
        if (live)
        {
            await console.Progress()
                .AutoClear(false)
                .HideCompleted(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                .StartAsync(async context =>
                {
                    var task = context.AddTask(Markup.Escape(runner.Model), maxValue: Total(settings));
                    while (!run.IsCompleted)
                    {
                        Update(task, runner, settings);
                        await Task.WhenAny(run, Task.Delay(100, CancellationToken.None));
                    }

                    Update(task, runner, settings);
                    task.Value = task.MaxValue;
                    task.StopTask();
                });
        }
        else
        {
            while (!run.IsCompleted)
            {
                await Task.WhenAny(run, Task.Delay(PlainInterval, CancellationToken.None));
                if (!run.IsCompleted)
                {
                    await output.WriteLineAsync($"  {runner.Model}: {Describe(runner, settings)}");
                }
            }

            var result = await run;
            await output.WriteLineAsync(string.Create(
                CultureInfo.InvariantCulture,
                $"  {runner.Model}: done, {result.Requests} requests, {result.Errors} errors, {result.WallTime.TotalSeconds:0.00} s, {result.RequestsPerSecond:0.0} requests/s"));
        }

        return await run;
    }

    /// <summary>The bar's scale: requests, or milliseconds of the duration.</summary>
    private static double Total(BenchSettings settings) => settings.Duration is { } duration ? duration.TotalMilliseconds : settings.Requests;

    private static void Update(ProgressTask task, BenchRunner runner, BenchSettings settings)
    {
        task.Value = settings.Duration is null ? runner.Completed : Math.Min(runner.Elapsed.TotalMilliseconds, task.MaxValue);
        var errors = runner.Errors == 0 ? string.Empty : $" [red]{runner.Errors.ToString(CultureInfo.InvariantCulture)} errors[/]";
        task.Description = $"{Markup.Escape(runner.Model)} {runner.Completed.ToString(CultureInfo.InvariantCulture)} done{errors}";
    }

    private static string Describe(BenchRunner runner, BenchSettings settings)
    {
        var done = settings.Duration is null
            ? $"{runner.Completed}/{settings.Requests} requests"
            : $"{runner.Completed} requests";
        var elapsed = runner.Elapsed.TotalSeconds;
        var rate = elapsed > 0 ? runner.Completed / elapsed : 0;
        return string.Create(CultureInfo.InvariantCulture, $"{done}, {runner.Errors} errors, {elapsed:0.0} s, {rate:0.0} requests/s");
    }
}
