using Shepherd.Cli;

return await ShepherdCli.RunAsync(args);
