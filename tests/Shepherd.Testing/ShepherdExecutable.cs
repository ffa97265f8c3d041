namespace Shepherd.Testing;

using System.Diagnostics;

/// <summary>Runs the built <c>shepherd</c> executable as a child process (the apphost beside the tests, else <c>dotnet shepherd.dll</c>).</summary>
public static class ShepherdExecutable
{
    public static async Task<(int Code, string Output, string Error)> RunAsync(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var directory = AppContext.BaseDirectory;
        var apphost = Path.Combine(directory, OperatingSystem.IsWindows() ? "shepherd.exe" : "shepherd");
        var start = File.Exists(apphost)
            ? new ProcessStartInfo(apphost)
            : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(directory, "shepherd.dll") } };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.Environment.Remove("SHEPHERD_CONFIG");
        start.Environment.Remove("SHEPHERD_MASTER_KEY");
        start.Environment["NO_COLOR"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output, await error);
    }
}
