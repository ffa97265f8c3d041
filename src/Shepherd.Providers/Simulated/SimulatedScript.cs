namespace Shepherd.Providers.Simulated;

using System.Text;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Providers.Shared;

/// <summary>
/// Decides, deterministically from the request, what the simulated model answers: words, a JSON object,
/// or tool calls; and how many tokens that is. Pure: same request, same answer.
/// </summary>
public static class SimulatedScript
{
    private static readonly string[] Vocabulary =
    [
        "the", "shepherd", "keeps", "every", "request", "on", "its", "path", "and", "counts", "tokens", "with", "care",
        "a", "relay", "between", "applications", "providers", "routes", "streams", "quickly", "budget", "model", "answer",
        "reliable", "gateway", "flock", "meadow", "latency", "cost", "simulated", "response", "deterministic", "text",
        "for", "demos", "load", "tests", "offline", "development", "is", "here", "to", "help", "you", "build",
    ];

    /// <summary>One planned choice: either text (as tokens) or tool calls.</summary>
    public sealed record Plan(IReadOnlyList<string> Tokens, IReadOnlyList<ToolCallOutput> ToolCalls, string FinishReason, int CompletionTokens);

    public static (IReadOnlyList<Plan> Choices, int PromptTokens) Build(ChatRequest request, string model, SimulatedConfig config)
    {
        using var document = JsonDocument.Parse(request.Body);
        var root = document.RootElement;
        var messages = root.GetProperty("messages");
        var lastUser = string.Empty;
        var lastRole = string.Empty;
        foreach (var message in messages.EnumerateArray())
        {
            lastRole = message.TryGetProperty("role", out var role) ? role.GetString() ?? string.Empty : string.Empty;
            if (lastRole == "user")
            {
                lastUser = TextOf(message);
            }
        }

        // Counted like the gateway counts (o200k_base), so reservations and reported usage agree exactly.
        var promptTokens = config.PromptTokens ?? Accounting.TokenEstimator.Default.EstimatePrompt(request);
        var seed = Hash(model, lastUser, request.Seed ?? 0);
        var choices = new List<Plan>(request.N);
        for (var i = 0; i < request.N; i++)
        {
            choices.Add(PlanChoice(request, root, lastUser, lastRole, config, seed + (ulong)i * 7919));
        }

        return (choices, promptTokens);
    }

    private static Plan PlanChoice(ChatRequest request, JsonElement root, string lastUser, string lastRole, SimulatedConfig config, ulong seed)
    {
        var limit = request.RequestedMaxOutputTokens;
        var tool = PickTool(root, lastUser, lastRole);
        if (tool is { } chosen)
        {
            var arguments = ArgumentsFor(chosen.Parameters, seed);
            var id = $"call_{seed:x16}"[..21];
            var tokens = Math.Max(1, (arguments.Length + chosen.Name.Length + 3) / 4);
            return new Plan([], [new ToolCallOutput(id, chosen.Name, arguments)], "tool_calls", config.CompletionTokens ?? tokens);
        }

        var wanted = config.CompletionTokens ?? config.ResponseTokens;
        var count = limit is { } max ? Math.Min(max, wanted) : wanted;
        var truncated = limit is { } m && m < wanted;
        var words = new List<string>(count);
        if (request.ResponseFormatType is "json_object" or "json_schema")
        {
            // JSON answers are whole objects: split into pieces so streaming still streams.
            var json = JsonAnswer(root, seed, count);
            for (var i = 0; i < json.Length; i += 8)
            {
                words.Add(json.Substring(i, Math.Min(8, json.Length - i)));
            }

            return new Plan(words, [], "stop", config.CompletionTokens ?? Math.Max(1, words.Count));
        }

        var rng = seed;
        for (var i = 0; i < count; i++)
        {
            rng = Next(rng);
            var word = Vocabulary[(int)(rng % (ulong)Vocabulary.Length)];
            words.Add(i == 0 ? Capitalise(word) : " " + word);
        }

        if (!truncated && words.Count > 0)
        {
            words[^1] += ".";
        }

        var finish = truncated ? "length" : "stop";
        if (request.Stop.Count > 0)
        {
            (words, var stopped) = ApplyStop(words, request.Stop);
            if (stopped)
            {
                finish = "stop";
            }
        }

        return new Plan(words, [], finish, config.CompletionTokens ?? words.Count);
    }

    private static (List<string> Words, bool Stopped) ApplyStop(List<string> words, IReadOnlyList<string> stops)
    {
        var text = string.Concat(words);
        var cut = -1;
        foreach (var stop in stops)
        {
            if (stop.Length == 0)
            {
                continue;
            }

            var at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut))
            {
                cut = at;
            }
        }

        if (cut < 0)
        {
            return (words, false);
        }

        var kept = new List<string>();
        var length = 0;
        foreach (var word in words)
        {
            if (length + word.Length <= cut)
            {
                kept.Add(word);
                length += word.Length;
            }
            else
            {
                if (cut > length)
                {
                    kept.Add(word[..(cut - length)]);
                }

                break;
            }
        }

        return (kept, true);
    }

    private readonly record struct ToolChoice(string Name, JsonElement Parameters);

    /// <summary>
    /// Calls a tool when tools are offered and the turn asks for one: <c>tool_choice</c> required or named always;
    /// <c>auto</c> when the last message is the user's (not a tool result) — the tool named in the user's text, else the first.
    /// </summary>
    private static ToolChoice? PickTool(JsonElement root, string lastUser, string lastRole)
    {
        if (!root.TryGetProperty("tools", out var tools) || tools.ValueKind != JsonValueKind.Array || tools.GetArrayLength() == 0)
        {
            return null;
        }

        string? forced = null;
        var mode = "auto";
        if (root.TryGetProperty("tool_choice", out var choice))
        {
            if (choice.ValueKind == JsonValueKind.String)
            {
                mode = choice.GetString()!;
            }
            else if (choice.ValueKind == JsonValueKind.Object &&
                     choice.TryGetProperty("function", out var function) &&
                     function.TryGetProperty("name", out var name))
            {
                mode = "named";
                forced = name.GetString();
            }
        }

        if (mode == "none" || (mode == "auto" && lastRole != "user"))
        {
            return null;
        }

        ToolChoice? first = null;
        foreach (var tool in tools.EnumerateArray())
        {
            if (!tool.TryGetProperty("function", out var function) || !function.TryGetProperty("name", out var nameElement))
            {
                continue;
            }

            var name = nameElement.GetString()!;
            var parameters = function.TryGetProperty("parameters", out var p) ? p : default;
            var candidate = new ToolChoice(name, parameters);
            first ??= candidate;
            if (forced is not null ? name == forced : lastUser.Contains(name, StringComparison.OrdinalIgnoreCase))
            {
                return candidate;
            }
        }

        return forced is null ? first : null;
    }

    /// <summary>Arguments that satisfy the schema's shape: every required (or, if none, every) property gets a value of its type.</summary>
    internal static string ArgumentsFor(JsonElement schema, ulong seed)
    {
        var sb = new StringBuilder();
        using (var writer = new Utf8JsonWriter(new StreamAdapter(sb), JsonDefaults.Writer))
        {
            WriteValue(writer, schema, seed, depth: 0);
        }

        return sb.ToString();
    }

    private static string JsonAnswer(JsonElement root, ulong seed, int words)
    {
        var sb = new StringBuilder();
        using (var writer = new Utf8JsonWriter(new StreamAdapter(sb), JsonDefaults.Writer))
        {
            if (root.TryGetProperty("response_format", out var format) &&
                format.TryGetProperty("json_schema", out var jsonSchema) &&
                jsonSchema.TryGetProperty("schema", out var schema))
            {
                WriteValue(writer, schema, seed, depth: 0);
            }
            else
            {
                writer.WriteStartObject();
                writer.WriteString("answer", Sentence(seed, Math.Clamp(words, 1, 16)));
                writer.WriteEndObject();
            }
        }

        return sb.ToString();
    }

    private static void WriteValue(Utf8JsonWriter writer, JsonElement schema, ulong seed, int depth)
    {
        // anyOf/oneOf (how Pydantic and MEAI spell optional values): the first alternative that is not null.
        if (schema.ValueKind == JsonValueKind.Object && depth < 8 &&
            (schema.TryGetProperty("anyOf", out var alternatives) || schema.TryGetProperty("oneOf", out alternatives)) &&
            alternatives.ValueKind == JsonValueKind.Array && alternatives.GetArrayLength() > 0)
        {
            var chosen = alternatives.EnumerateArray().FirstOrDefault(a => TypeOf(a) != "null");
            WriteValue(writer, chosen.ValueKind == JsonValueKind.Undefined ? alternatives[0] : chosen, seed, depth + 1);
            return;
        }

        var type = TypeOf(schema);
        if (schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("enum", out var values) && values.ValueKind == JsonValueKind.Array && values.GetArrayLength() > 0)
        {
            values[(int)(seed % (ulong)values.GetArrayLength())].WriteTo(writer);
            return;
        }

        switch (type)
        {
            case "string":
                writer.WriteStringValue(Sentence(seed, 2));
                break;
            case "integer":
                writer.WriteNumberValue((long)(seed % 100));
                break;
            case "number":
                writer.WriteNumberValue((seed % 1000) / 10.0);
                break;
            case "boolean":
                writer.WriteBooleanValue(seed % 2 == 0);
                break;
            case "array":
                writer.WriteStartArray();
                if (depth < 4 && schema.TryGetProperty("items", out var items))
                {
                    WriteValue(writer, items, Next(seed), depth + 1);
                }

                writer.WriteEndArray();
                break;
            case "null":
                writer.WriteNullValue();
                break;
            default:
                writer.WriteStartObject();
                if (depth < 4 && schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("properties", out var properties) && properties.ValueKind == JsonValueKind.Object)
                {
                    var required = schema.TryGetProperty("required", out var r) && r.ValueKind == JsonValueKind.Array
                        ? r.EnumerateArray().Select(x => x.GetString()).ToHashSet()
                        : null;
                    var s = seed;
                    foreach (var property in properties.EnumerateObject())
                    {
                        if (required is not null && !required.Contains(property.Name))
                        {
                            continue;
                        }

                        s = Next(s);
                        writer.WritePropertyName(property.Name);
                        WriteValue(writer, property.Value, s, depth + 1);
                    }
                }

                writer.WriteEndObject();
                break;
        }
    }

    /// <summary>The schema's type; of a type list (<c>["string","null"]</c>) the first that is not null; <c>object</c> when unsaid.</summary>
    private static string? TypeOf(JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Object || !schema.TryGetProperty("type", out var type))
        {
            return "object";
        }

        if (type.ValueKind == JsonValueKind.String)
        {
            return type.GetString();
        }

        if (type.ValueKind == JsonValueKind.Array)
        {
            string? first = null;
            foreach (var item in type.EnumerateArray())
            {
                var name = item.ValueKind == JsonValueKind.String ? item.GetString() : null;
                first ??= name;
                if (name is not null and not "null")
                {
                    return name;
                }
            }

            return first ?? "object";
        }

        return "object";
    }

    private static string Sentence(ulong seed, int words)
    {
        var parts = new string[words];
        for (var i = 0; i < words; i++)
        {
            seed = Next(seed);
            parts[i] = Vocabulary[(int)(seed % (ulong)Vocabulary.Length)];
        }

        return string.Join(' ', parts);
    }

    private static string TextOf(JsonElement message)
    {
        if (!message.TryGetProperty("content", out var content))
        {
            return string.Empty;
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return string.Empty;
        }

        var sb = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
            {
                sb.Append(text.GetString()).Append(' ');
            }
        }

        return sb.ToString();
    }

    private static string Capitalise(string word) => char.ToUpperInvariant(word[0]) + word[1..];

    private static ulong Hash(string model, string text, long seed)
    {
        // FNV-1a: stable across processes (string.GetHashCode is randomised).
        var hash = 14695981039346656037UL ^ (ulong)seed;
        foreach (var ch in model)
        {
            hash = (hash ^ ch) * 1099511628211UL;
        }

        foreach (var ch in text)
        {
            hash = (hash ^ ch) * 1099511628211UL;
        }

        return hash;
    }

    private static ulong Next(ulong state)
    {
        // SplitMix64 step.
        state += 0x9E3779B97F4A7C15UL;
        var z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Lets a <see cref="Utf8JsonWriter"/> append to a <see cref="StringBuilder"/>.</summary>
    private sealed class StreamAdapter(StringBuilder sb) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => sb.Length;

        public override long Position { get => sb.Length; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => sb.Append(Encoding.UTF8.GetString(buffer, offset, count));

        public override void Write(ReadOnlySpan<byte> buffer) => sb.Append(Encoding.UTF8.GetString(buffer));

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
