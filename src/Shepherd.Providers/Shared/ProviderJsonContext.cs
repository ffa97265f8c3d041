namespace Shepherd.Providers;

using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

/// <summary>Source-generated JSON metadata for the few DOM types the adapters serialise.</summary>
[JsonSourceGenerationOptions(WriteIndented = false)]
[JsonSerializable(typeof(JsonObject))]
[JsonSerializable(typeof(JsonNode))]
[JsonSerializable(typeof(JsonArray))]
[JsonSerializable(typeof(string))]
internal sealed partial class ProviderJsonContext : JsonSerializerContext;
