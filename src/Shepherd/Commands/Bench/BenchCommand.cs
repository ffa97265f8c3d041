namespace Shepherd.Cli.Commands.Bench;

using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Spectre.Console;

/// <summary>
/// <c>shepherd bench</c>: times real Chat Completions requests against a gateway (or any OpenAI-compatible server),
/// closed-loop at a given concurrency, and reports latency percentiles, time to first token, throughput and cost.
/// </summary>
/// <remarks>Exit codes: 0 the run completed (request errors are reported, not fatal), 1 bad usage, 2 gateway unreachable.</remarks>
internal static class BenchCommand
{
    public const int Completed = 0;

    public const int BadUsage = 1;

    public const int Unreachable = 2;

    /// <summary>Ctrl+C: what completed is still reported and written.</summary>
    public const int Interrupted = 130;

    public static Command Create()
    {
        var url = new Option<string?>("--url")
        {
            Description = $"Gateway base URL, with or without /v1 (default: $SHEPHERD_URL or {AdminClient.DefaultUrl}).",
            HelpName = "URL",
        };
        var key = new Option<string?>("--key")
        {
            Description = "API key sent as a bearer token (default: $SHEPHERD_API_KEY, else $SHEPHERD_MASTER_KEY).",
            HelpName = "KEY",
        };
        var model = new Option<string?>("--model", "-m") { Description = "The model to benchmark.", HelpName = "MODEL" };
        var compare = new Option<string?>("--compare")
        {
            Description = "Run the same prompt and settings across these models in turn and print one comparison table (comma-separated).",
            HelpName = "M1,M2,…",
        };
        var requests = new Option<int>("--requests", "-n")
        {
            Description = "Requests per model (ignored when --duration is given).",
            HelpName = "N",
            DefaultValueFactory = _ => 100,
        };
        var duration = new Option<double?>("--duration")
        {
            Description = "Run each model this many seconds instead of a number of requests.",
            HelpName = "SECONDS",
        };
        var concurrency = new Option<int>("--concurrency")
        {
            Description = "Requests in flight at once (closed loop: each worker sends its next request when the last one ended).",
            HelpName = "C",
            DefaultValueFactory = _ => 1,
        };
        var stream = new Option<bool>("--stream") { Description = "Stream the answers (SSE) and measure time to first token and output speed." };
        var prompt = new Option<string?>("--prompt")
        {
            Description = "A text file sent as the user message, or a JSON file with a messages array (default: a short built-in question).",
            HelpName = "FILE",
        };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "max_tokens of each request (default: not sent).", HelpName = "N" };
        var timeout = new Option<double>("--timeout")
        {
            Description = "Longest a request may take before it counts as a timeout error, in seconds.",
            HelpName = "SECONDS",
            DefaultValueFactory = _ => 120,
        };
        var json = new Option<string?>("--json") { Description = "Also write every number and per-request sample as JSON (schema shepherd-bench/1).", HelpName = "FILE" };
        var html = new Option<string?>("--html") { Description = "Also write a self-contained HTML report with latency charts.", HelpName = "FILE" };

        AtLeast(requests, 1, "--requests");
        AtLeast(concurrency, 1, "--concurrency");
        concurrency.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() > 10_000)
            {
                r.AddError("--concurrency must be at most 10000.");
            }
        });
        duration.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is { } s && (!(s > 0) || s > 86_400))
            {
                r.AddError("--duration must be more than 0 and at most 86400 seconds.");
            }
        });
        maxTokens.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is < 1)
            {
                r.AddError("--max-tokens must be at least 1.");
            }
        });
        timeout.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is var s && (!(s > 0) || s > 86_400))
            {
                r.AddError("--timeout must be more than 0 and at most 86400 seconds.");
            }
        });

        var command = new Command("bench", "Benchmark models through a gateway: latency percentiles, time to first token, throughput, errors and cost.")
        {
            url, key, model, compare, requests, duration, concurrency, stream, prompt, maxTokens, timeout, json, html,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var settings = Settings(parse, url, key, model, compare, requests, duration, concurrency, stream, prompt, maxTokens, timeout, out var problem);
            var jsonPath = parse.GetValue(json);
            var htmlPath = parse.GetValue(html);
            problem ??= CheckOutputPath(jsonPath, "--json") ?? CheckOutputPath(htmlPath, "--html");
            if (problem is not null || settings is null)
            {
                await error.WriteLineAsync($"shepherd bench: {problem}");
                return BadUsage;
            }

            return await RunAsync(settings, parse.InvocationConfiguration.Output, error, jsonPath, htmlPath, cancellationToken);
        });
        return command;
    }

    private static void AtLeast(Option<int> option, int minimum, string name) => option.Validators.Add(r =>
    {
        if (r.GetValueOrDefault<int>() < minimum)
        {
            r.AddError($"{name} must be at least {minimum.ToString(CultureInfo.InvariantCulture)}.");
        }
    });

    private static BenchSettings? Settings(
        ParseResult parse,
        Option<string?> url,
        Option<string?> key,
        Option<string?> model,
        Option<string?> compare,
        Option<int> requests,
        Option<double?> duration,
        Option<int> concurrency,
        Option<bool> stream,
        Option<string?> prompt,
        Option<int?> maxTokens,
        Option<double> timeout,
        out string? problem)
    {
        problem = null;
        var rawUrl = parse.GetValue(url) ?? NonEmpty(Environment.GetEnvironmentVariable("SHEPHERD_URL")) ?? AdminClient.DefaultUrl;
        if (BenchSettings.NormalizeBaseUrl(rawUrl) is not { } baseUrl)
        {
            problem = $"--url '{rawUrl}' is not an http(s) URL such as http://127.0.0.1:8080 or http://127.0.0.1:8080/v1";
            return null;
        }

        // --model first (when given), then the --compare list; each model once.
        var models = new List<string>();
        foreach (var name in new[] { parse.GetValue(model) }.Concat((parse.GetValue(compare) ?? string.Empty).Split(',')))
        {
            if (name?.Trim() is { Length: > 0 } trimmed && !models.Contains(trimmed, StringComparer.Ordinal))
            {
                models.Add(trimmed);
            }
        }

        if (models.Count == 0)
        {
            problem = "say which model to benchmark with --model MODEL (or --compare M1,M2)";
            return null;
        }

        var messages = BenchPrompt.BuiltInMessages();
        var promptSource = "built-in";
        if (parse.GetValue(prompt) is { } promptFile)
        {
            messages = BenchPrompt.Load(promptFile, out problem)!;
            if (problem is not null)
            {
                return null;
            }

            promptSource = promptFile;
        }

        return new BenchSettings
        {
            BaseUrl = baseUrl,
            Key = parse.GetValue(key) ?? NonEmpty(Environment.GetEnvironmentVariable("SHEPHERD_API_KEY")) ?? NonEmpty(Environment.GetEnvironmentVariable("SHEPHERD_MASTER_KEY")),
            Models = models,
            Requests = parse.GetValue(requests),
            Duration = parse.GetValue(duration) is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            Concurrency = parse.GetValue(concurrency),
            Stream = parse.GetValue(stream),
            MaxTokens = parse.GetValue(maxTokens),
            MessagesJson = messages,
            PromptSource = promptSource,
            Timeout = TimeSpan.FromSeconds(parse.GetValue(timeout)),
        };
    }

    /// <summary>A report file must be writable where it is asked for: checked before the run, not after minutes of it.</summary>
    private static string? CheckOutputPath(string? path, string option)
    {
        if (path is null)
        {
            return null;
        }

        try
        {
            var full = Path.GetFullPath(path);
            return Directory.Exists(Path.GetDirectoryName(full)) && !Directory.Exists(full)
                ? null
                : $"{option} '{path}': the folder does not exist (or the path is a folder)";
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException)
        {
            return $"{option} '{path}': {ex.Message}";
        }
    }

    private static async Task<int> RunAsync(BenchSettings settings, TextWriter output, TextWriter error, string? jsonPath, string? htmlPath, CancellationToken cancellationToken)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = AnsiSupport.Detect,
            ColorSystem = ColorSystemSupport.Detect,
            Interactive = InteractionSupport.Detect,
        });
        var live = output == Console.Out && !Console.IsOutputRedirected && console.Profile.Capabilities.Interactive;
        if (!live)
        {
            // Piped output has no terminal width: keep rows whole rather than wrapping them.
            console.Profile.Width = 200;
        }

        using var client = new BenchClient(settings);
        var (status, message) = await client.PreflightAsync(cancellationToken);
        if (cancellationToken.IsCancellationRequested)
        {
            return Interrupted;
        }

        if (status is null)
        {
            await error.WriteLineAsync($"shepherd bench: cannot reach the gateway at {settings.BaseUrl.AbsoluteUri.TrimEnd('/')}: {message}");
            return Unreachable;
        }

        if (status is 401 or 403)
        {
            await error.WriteLineAsync($"shepherd bench: the gateway refused the key ({status.Value.ToString(CultureInfo.InvariantCulture)}: {message}). Pass --key or set SHEPHERD_API_KEY.");
            return BadUsage;
        }

        var startedAt = DateTimeOffset.UtcNow;
        var runs = new List<BenchRun>();
        foreach (var model in settings.Models)
        {
            var plan = settings.Duration is { } d
                ? $"{d.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s"
                : $"{settings.Requests.ToString(CultureInfo.InvariantCulture)} requests";
            await output.WriteLineAsync($"shepherd bench: {model}, {plan} at concurrency {settings.Concurrency.ToString(CultureInfo.InvariantCulture)}{(settings.Stream ? ", streamed" : "")} → {settings.BaseUrl.AbsoluteUri.TrimEnd('/')}");
            var runner = new BenchRunner(client, settings, model);
            var run = await BenchProgress.RunAsync(runner, settings, console, output, live, cancellationToken);
            runs.Add(run);
            if (run.Interrupted)
            {
                break;
            }
        }

        BenchConsoleReport.Write(console, settings, runs);
        var code = Completed;
        try
        {
            if (jsonPath is not null)
            {
                await using (var file = File.Create(jsonPath))
                {
                    BenchJsonReport.Write(file, settings, runs, startedAt);
                }

                await output.WriteLineAsync($"JSON report: {jsonPath}");
            }

            if (htmlPath is not null)
            {
                await File.WriteAllTextAsync(htmlPath, BenchHtmlReport.Render(settings, runs, startedAt), CancellationToken.None);
                await output.WriteLineAsync($"HTML report: {htmlPath}");
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"shepherd bench: cannot write the report: {ex.Message}");
            code = BadUsage;
        }

        // A refusal every request would meet (unknown model, bad key, bad prompt) is bad usage: say which, from its first error.
        foreach (var run in runs.Where(r => r.Fatal is not null))
        {
            await error.WriteLineAsync($"shepherd bench: {run.Model}: {BenchFormat.Error(run.Fatal!)}");
            code = BadUsage;
        }

        var all = runs.SelectMany(r => r.Samples).ToList();
        if (code == Completed && all.Count > 0 && all.All(s => s.Status == 0 && s.ErrorStatus == "network"))
        {
            await error.WriteLineAsync($"shepherd bench: cannot reach the gateway at {settings.BaseUrl.AbsoluteUri.TrimEnd('/')}: {all[0].ErrorMessage}");
            return Unreachable;
        }

        return runs.Any(r => r.Interrupted) ? Interrupted : code;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
