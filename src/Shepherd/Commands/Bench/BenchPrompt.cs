namespace Shepherd.Cli.Commands.Bench;

using System.Text.Json;
using System.Text.Json.Nodes;

/// <summary>The <c>messages</c> a benchmark sends: a built-in question, a text file as the user message, or a JSON file.</summary>
internal static class BenchPrompt
{
    /// <summary>Short on purpose: the default measures the gateway and the model's first tokens, not a long prefill.</summary>
    public const string BuiltIn = "In three sentences, explain what a shepherd's dog does.";

    public static string BuiltInMessages() => Messages(BuiltIn);

    /// <summary>
    /// Reads a prompt file. JSON (a <c>.json</c> file, or text that parses as JSON) is either an array of messages or
    /// an object with a <c>messages</c> array (such as a whole request body; its other fields are ignored). Anything
    /// else is the text of one user message.
    /// </summary>
    /// <returns>The messages as a JSON array, or null with <paramref name="error"/> set.</returns>
    public static string? Load(string path, out string? error)
    {
        error = null;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error = $"cannot read the prompt file '{path}': {ex.Message}";
            return null;
        }

        var isJsonFile = path.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
        var trimmed = text.TrimStart();
        if (isJsonFile || trimmed.StartsWith('[') || trimmed.StartsWith('{'))
        {
            JsonNode? node = null;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException ex) when (isJsonFile)
            {
                error = $"the prompt file '{path}' is not valid JSON: {ex.Message}";
                return null;
            }
            catch (JsonException)
            {
                // Text that merely starts with a bracket: a plain prompt.
            }

            if (node is not null)
            {
                var messages = node is JsonObject obj ? obj["messages"] : node;
                if (messages is JsonArray { Count: > 0 } array && array.All(m => m is JsonObject))
                {
                    return array.ToJsonString();
                }

                error = $"the prompt file '{path}' must hold a non-empty JSON array of messages, or an object with one under \"messages\"";
                return null;
            }
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            error = $"the prompt file '{path}' is empty";
            return null;
        }

        return Messages(text.TrimEnd());
    }

    private static string Messages(string userText) =>
        new JsonArray(new JsonObject { ["role"] = "user", ["content"] = userText }).ToJsonString();
}
