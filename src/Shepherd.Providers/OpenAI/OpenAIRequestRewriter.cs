namespace Shepherd.Providers.OpenAI;

using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Shepherd.Chat;
using Shepherd.Providers.Shared;

/// <summary>
/// Builds the body for an OpenAI-compatible upstream from the client's own bytes: the model value is spliced,
/// stream usage is requested, and nothing else changes, so fields Shepherd does not know still reach the upstream.
/// </summary>
public static class OpenAIRequestRewriter
{
    private static readonly byte[] StreamOptionsMember = "\"stream_options\":{\"include_usage\":true},"u8.ToArray();
    private static readonly byte[] StreamOptionsObject = "{\"include_usage\":true}"u8.ToArray();

    /// <param name="request">The validated client request.</param>
    /// <param name="modelJson">The upstream model as a JSON string token (quoted, escaped).</param>
    /// <param name="developerAsSystem">Rename <c>developer</c> messages to <c>system</c> for servers that reject the role.</param>
    /// <param name="output">Receives the body.</param>
    public static void Write(ChatRequest request, ReadOnlyMemory<byte> modelJson, bool developerAsSystem, PooledBuffer output)
    {
        var body = request.Body.Span;
        if (developerAsSystem && request.HasDeveloperRole)
        {
            WriteRebuilt(request, modelJson.Span, output);
            return;
        }

        var edits = default(Edits);
        var count = 0;
        edits[count++] = new Edit(request.ModelRange.Start, request.ModelRange.Length, modelJson);

        // Always ask for stream usage: cost accounting needs it, and the chunk is dropped again if the client did not ask.
        if (request.Stream && !request.IncludeUsage)
        {
            if (request.StreamOptionsRange.IsPresent)
            {
                var replaced = WithIncludeUsage(request.StreamOptionsRange.Slice(request.Body).Span);
                edits[count++] = new Edit(request.StreamOptionsRange.Start, request.StreamOptionsRange.Length, replaced);
            }
            else
            {
                var open = body.IndexOf((byte)'{');
                edits[count++] = new Edit(open + 1, 0, StreamOptionsMember);
            }
        }

        if (count == 2 && edits[1].Start < edits[0].Start)
        {
            (edits[0], edits[1]) = (edits[1], edits[0]);
        }

        var position = 0;
        for (var i = 0; i < count; i++)
        {
            var edit = edits[i];
            output.Write(body[position..edit.Start]);
            output.Write(edit.Replacement.Span);
            position = edit.Start + edit.Length;
        }

        output.Write(body[position..]);
    }

    private static byte[] WithIncludeUsage(ReadOnlySpan<byte> streamOptions)
    {
        // Rare: the client sent stream_options without include_usage (or null). Keep its other members.
        if (JsonNode.Parse(streamOptions) is JsonObject node)
        {
            node["include_usage"] = true;
            return JsonSerializer.SerializeToUtf8Bytes(node, ProviderJsonContext.Default.JsonObject);
        }

        return StreamOptionsObject;
    }

    /// <summary>The slow path: re-serialise through a DOM (only for the developer-role rename).</summary>
    private static void WriteRebuilt(ChatRequest request, ReadOnlySpan<byte> modelJson, PooledBuffer output)
    {
        var root = JsonNode.Parse(request.Body.Span)!.AsObject();
        root["model"] = JsonNode.Parse(modelJson);
        if (root["messages"] is JsonArray messages)
        {
            foreach (var message in messages)
            {
                if (message is JsonObject m && m["role"]?.GetValue<string>() == "developer")
                {
                    m["role"] = "system";
                }
            }
        }

        if (request.Stream && !request.IncludeUsage)
        {
            var options = root["stream_options"] as JsonObject ?? [];
            options.Remove("include_usage");
            options["include_usage"] = true;
            root["stream_options"] = options;
        }

        using var writer = new Utf8JsonWriter(output, JsonDefaults.Writer);
        root.WriteTo(writer);
    }

    private readonly record struct Edit(int Start, int Length, ReadOnlyMemory<byte> Replacement);

    [InlineArray(2)]
    private struct Edits
    {
        private Edit _element;
    }
}
